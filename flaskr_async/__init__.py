"""Flaskr on Quart: the application factory, the first file to read.

Read next: ``db/__init__.py`` (the database), ``auth.py`` and ``blog.py`` (the views), as in
Flask's tutorial. Below, this factory installs the database (``db/``), the request hardening
(``middleware/``), the live index (``live/``) and the development server's hook
(``serving/devserver.py``); ``auth.py`` calls ``accounts/``, and ``serving/command.py`` calls
this factory. docs/porting.md sets each file beside Flaskr's.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from quart import Quart

from flaskr_async import auth
from flaskr_async import blog
from flaskr_async import config_file
from flaskr_async import db
from flaskr_async import live
from flaskr_async import logs
from flaskr_async import settings
from flaskr_async import templating
from flaskr_async.db import commands
from flaskr_async.middleware import body_limits
from flaskr_async.middleware import boundary
from flaskr_async.middleware import cookie_session
from flaskr_async.middleware import deadlines
from flaskr_async.middleware import security
from flaskr_async.serving import devserver


def load_settings(app: Quart, test_config: Mapping[str, Any] | None = None) -> list[str]:
    """Fill the app's config from every source, unchecked; return what config.py or the environment
    got wrong: names that Quart would ignore, values that are not JSON."""
    app.config.from_mapping(
        SECRET_KEY="dev",
        DATABASE=os.path.join(app.instance_path, "flaskr.sqlite"),
        **settings.DEFAULTS,
    )
    misspelled = []
    if test_config is None:
        # The instance config, if it exists, when not testing.
        known = set(app.config)  # Quart's defaults and this app's
        path = os.path.join(app.instance_path, "config.py")
        config_file.run(app.config, path)
        misspelled = config_file.misspelled(path, known)
    else:
        app.config.from_mapping(test_config)
    return [*misspelled, *settings.apply_environment(app.config, os.environ)]


def check_serving(app: Quart) -> None:
    """Raise InvalidSetting if the app may not serve as configured: a weak key, outside debug."""
    settings.check_serving(app.config, os.environ, os.path.join(app.instance_path, "config.py"))


def create_app(test_config: Mapping[str, Any] | None = None) -> Quart:
    """Create and configure an instance of the app; raise InvalidSetting for a bad setting.

    Nothing here opens a file, a socket or the database: an ASGI server, the serve command and
    the tests each start serving later, and the database opens then (db.serve_database).
    """
    # create and configure the app
    # Quart, with a development server that fails in one line (serving/devserver.py)
    app = devserver.App(__name__, instance_relative_config=True)
    templating.init_app(app)
    unreadable = load_settings(app, test_config)
    config_file = os.path.join(app.instance_path, "config.py")
    settings.check(app.config, os.environ, unreadable, config_file)

    # ensure the instance folder exists, its owner's alone (it holds the key and the
    # database); as in Flask's tutorial, a read-only install still starts when every
    # setting points elsewhere (what writes here says so itself)
    try:
        os.makedirs(app.instance_path, mode=0o700, exist_ok=True)
    except OSError:
        pass

    # As Flaskr's, the factory accepts the "dev" key, so commands work on a fresh clone; any
    # server that starts serving the app runs this first (the ASGI lifespan), which refuses
    # that key or a short one outside debug and testing, before the database or a request
    @app.before_serving
    async def refuse_a_weak_key() -> None:
        try:
            check_serving(app)
        except settings.InvalidSetting as error:
            # The one line create_app's refusals print; Quart's traceback of it is dropped
            # (middleware/security.py) and the server says that start-up failed.
            app.logger.error("Start-up failed: %s", error)
            raise

    # a simple page that says hello
    @app.route("/hello")
    async def hello() -> str:
        return "Hello, World!"

    # log lines as before the package had folders (logs.py)
    logs.init_app(app)

    @app.before_serving
    async def log_at_info() -> None:
        # The first use of app.logger adds Quart's stderr handler unless logging is configured;
        # INFO lets the database's opening and closing reach the server's output.
        if app.logger.level == logging.NOTSET:
            app.logger.setLevel(logging.INFO)

    # request hardening, part 1 (middleware/): bodies are bounded before anything (the CSRF
    # check) parses them, and the session cookie is read without per-request set-up
    body_limits.init_app(app)
    cookie_session.init_app(app)

    # the database, opened while serving, and its commands (init-db, backup)
    db.init_app(app)
    commands.init_app(app)
    # the live index (live/): after the database, so its streams open after it and end
    # before it closes
    live.init_app(app)
    # quiet reloads for `quart run --debug` (serving/devserver.py)
    devserver.init_app(app)

    # apply the blueprints to the app
    app.register_blueprint(auth.bp)
    app.register_blueprint(blog.bp)
    # "/" is the blog index; url_for("index") works as well as url_for("blog.index")
    app.add_url_rule("/", endpoint="index")

    # request hardening, part 2, in this order: the Host and framing check, then security
    # (its ProxyFix wraps that check; after the blueprints, so the user is loaded before the
    # CSRF check and even its 400 page shows a logged-in user's navigation), then deadlines,
    # outermost, so every write to a client has one whatever layer answers
    boundary.init_app(app)
    security.init_app(app)
    deadlines.init_app(app)

    # last: after every extension and blueprint has added its context processors
    templating.inline_context_processors(app)
    return app
