"""The reference: a minimal Flask + sqlite3 Flaskr index with the real schema, query and templates.

Served by gunicorn with one sync worker. ``FLASKR_DATABASE`` names the seeded file,
``FLASKR_POSTS_PER_PAGE`` the page size; ``BENCH_REUSE_CONNECTION=1`` keeps one sqlite3
connection per worker instead of Flaskr's connection per request. ``BENCH_TREE`` is the
project tree whose templates are rendered.
"""

from __future__ import annotations

import atexit
import os
import sqlite3
from datetime import UTC
from datetime import datetime
from pathlib import Path

from flask import Blueprint
from flask import Flask
from flask import g
from flask import render_template
from flask import request
from flask import session

TREE = Path(os.environ.get("BENCH_TREE", Path(__file__).resolve().parent.parent))
PACKAGE = TREE / "flaskr_async"
DATABASE = os.environ["FLASKR_DATABASE"]
POSTS_PER_PAGE = int(os.environ.get("FLASKR_POSTS_PER_PAGE", "20"))
REUSE_CONNECTION = os.environ.get("BENCH_REUSE_CONNECTION") == "1"
MAX_ID = 2**63 - 1

# The SQL of flaskr_async/blog.py's newest page, verbatim.
POST_COLUMNS = (
    "SELECT p.id, title, body, created, author_id, username"
    ' FROM post p JOIN "user" u ON p.author_id = u.id'
)
OLDER_POSTS = POST_COLUMNS + " WHERE p.id < ? ORDER BY p.id DESC LIMIT ?"


def parse_timestamp(value: bytes) -> datetime:
    """Read SQLite's CURRENT_TIMESTAMP text as an aware UTC datetime, as the app does."""
    return datetime.fromisoformat(value.decode()).replace(tzinfo=UTC)


sqlite3.register_converter("timestamp", parse_timestamp)

app = Flask(
    __name__,
    template_folder=str(PACKAGE / "templates"),
    static_folder=str(PACKAGE / "static"),
)
app.config["SECRET_KEY"] = "reference-secret-key-that-is-long-enough"
blog = Blueprint("blog", __name__)
auth = Blueprint("auth", __name__, url_prefix="/auth")
shared: dict[str, sqlite3.Connection] = {}


def connect() -> sqlite3.Connection:
    """Open a connection the way Flaskr does."""
    connection = sqlite3.connect(DATABASE, detect_types=sqlite3.PARSE_DECLTYPES)
    connection.row_factory = sqlite3.Row
    return connection


def get_db() -> sqlite3.Connection:
    """Return this request's connection (or the worker's one, when reusing)."""
    if REUSE_CONNECTION:
        if "db" not in shared:
            shared["db"] = connect()
            atexit.register(shared["db"].close)  # the worker's connection lives until it exits
        return shared["db"]
    if "db" not in g:
        g.db = connect()
    return g.db  # type: ignore[no-any-return]


@app.teardown_appcontext
def close_db(_error: BaseException | None = None) -> None:
    """Close this request's connection, as Flaskr does."""
    db = g.pop("db", None)
    if db is not None:
        db.close()


@app.before_request
def load_logged_in_user() -> None:
    """Load the user from the session, as Flaskr does on every request."""
    user_id = session.get("user_id")
    g.user = (
        None
        if user_id is None
        else get_db().execute('SELECT id, username FROM "user" WHERE id = ?', (user_id,)).fetchone()
    )


@app.template_global()
def csrf_token() -> str:
    """Stand in for quart-wtf's token (the index renders it only for a logged-in user)."""
    return "token"


@blog.route("/")
def index() -> str:
    """Render the newest page of posts with the app's query and template."""
    before = request.args.get("before", type=int)
    rows = get_db().execute(OLDER_POSTS, (before or MAX_ID, POSTS_PER_PAGE + 1)).fetchall()
    posts = rows[:POSTS_PER_PAGE]
    older = posts[-1]["id"] if len(rows) > POSTS_PER_PAGE else None
    return render_template("blog/index.html", posts=posts, newer=None, older=older)


@blog.route("/create")
def create() -> str:
    """Exist for url_for."""
    return ""


@blog.route("/<int:id>/update")
def update(id: int) -> str:
    """Exist for url_for."""
    return ""


@auth.route("/register")
def register() -> str:
    """Exist for url_for."""
    return ""


@auth.route("/login")
def login() -> str:
    """Exist for url_for."""
    return ""


@auth.route("/logout")
def logout() -> str:
    """Exist for url_for."""
    return ""


@app.route("/hello")
def hello() -> str:
    """Say hello (the harness polls it to know the server is up)."""
    return "Hello, World!"


app.register_blueprint(blog)
app.register_blueprint(auth)
app.add_url_rule("/", endpoint="index")
