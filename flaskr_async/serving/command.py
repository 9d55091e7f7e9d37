"""Serve the app with hypercorn, exiting non-zero when start-up fails.

python -m flaskr_async serve [--config hypercorn.toml] [--bind HOST:PORT] [--plain-http]:
--bind replaces the config's addresses (`make run BIND=127.0.0.1:8001` passes it);
--plain-http (make run) drops the cookie's Secure flag unless it is set (plain_http.py).
Without --config, hypercorn's defaults: 127.0.0.1:8000, one worker, asyncio's own loop
(make run passes the shipped hypercorn.toml: uvloop). hypercorn's own command exits 0 after
a failed start-up, which hides the failure from systemd and scripts.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
from collections.abc import Sequence
from functools import partial

from hypercorn.asyncio import serve
from hypercorn.config import Config
from hypercorn.run import run
from hypercorn.utils import LifespanFailureError
from quart import Quart

import flaskr_async
from flaskr_async import check_serving
from flaskr_async import create_app
from flaskr_async import load_settings
from flaskr_async import private_files
from flaskr_async.serving.access_log import EscapedAccessLogger
from flaskr_async.serving.event_loops import WORKER_CLASSES
from flaskr_async.serving.event_loops import event_loop_factory
from flaskr_async.serving.listening import binds_problem
from flaskr_async.serving.listening import listen_failure
from flaskr_async.serving.plain_http import LINE as PLAIN_HTTP_LINE
from flaskr_async.serving.plain_http import use_plain_http_cookies
from flaskr_async.serving.shutdown import stopped
from flaskr_async.serving.shutdown import streams_end_first
from flaskr_async.settings import InvalidSetting


def ensure_secret_key(app: Quart) -> bool:
    """Write a random SECRET_KEY into instance/config.py if none is configured; True if written.

    A new config.py is created owner-only; an existing one is appended to only if it is this
    user's regular file, closed to others (private_files.py), and the write is checked.
    """
    if app.config["SECRET_KEY"] != "dev":
        return False
    path = os.path.join(app.instance_path, "config.py")
    text = (
        "\n# Written by `python -m flaskr_async serve`; keep it secret.\n"
        f"SECRET_KEY = {secrets.token_hex(32)!r}\n"
    )
    try:
        os.makedirs(app.instance_path, mode=0o700, exist_ok=True)
        try:
            descriptor = private_files.create(path)
        except FileExistsError:
            descriptor = private_files.open_existing(path, os.O_WRONLY | os.O_APPEND)
        try:
            private_files.write_all(descriptor, text.encode())
            private_files.check_written(descriptor, path)
        finally:
            os.close(descriptor)
    except private_files.UnsafeFile as error:
        raise InvalidSetting(f"cannot write SECRET_KEY: {error}") from error
    except OSError as error:
        raise InvalidSetting(
            f"cannot write SECRET_KEY to {path}: {error.strerror}; set FLASKR_SECRET_KEY"
            f" or make {app.instance_path} writable"
        ) from error
    app.logger.warning("Wrote a new random SECRET_KEY to %s", path)
    return True


def configured_app() -> Quart:
    """Create the app, first writing a random SECRET_KEY if no source sets one, and check it."""
    unchecked = Quart(flaskr_async.__name__, instance_relative_config=True)
    load_settings(unchecked)
    ensure_secret_key(unchecked)
    app = create_app()
    # Serving would refuse a weak key too (the app's start-up hook); here it is the one line
    # of a refused setting, before hypercorn starts, as for any other.
    check_serving(app)
    return app


def hypercorn_config(
    config_path: str | None, bind: Sequence[str], access_log: str | None = None
) -> Config:
    """Load hypercorn's settings from a TOML file, binding to loopback unless told otherwise."""
    config = Config.from_toml(config_path) if config_path else Config()
    if bind:
        config.bind = list(bind)
    elif not config_path:
        config.bind = ["127.0.0.1:8000"]
    if access_log:
        config.accesslog = access_log
    # Whatever turned the access log on: the client's text is escaped in it (access_log.py).
    config.logger_class = EscapedAccessLogger
    config.application_path = "flaskr_async:create_app()"
    return config


async def check_startup(app: Quart) -> None:
    """Start the app and stop it again, so that a broken set-up fails before workers fork."""
    try:
        await app.startup()
    except Exception as error:
        # Logged already, as hypercorn's lifespan failure is: say so the same way.
        raise LifespanFailureError("startup", str(error)) from error
    await app.shutdown()


async def serve_until_stopped(app: Quart, config: Config) -> int:
    """Serve in this process until SIGTERM or SIGINT; return the exit status."""
    # Our trigger: open live streams end at once, so shutdown does not wait for them.
    await serve(app, config, shutdown_trigger=partial(stopped, app))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the app; return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m flaskr_async", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="serve the app with hypercorn")
    serve_parser.add_argument("--config", help="a hypercorn TOML config file")
    serve_parser.add_argument("--bind", action="append", default=[], help="HOST:PORT")
    serve_parser.add_argument(
        "--access-logfile", help="a line per request to this file ('-': stdout), as hypercorn's"
    )
    serve_parser.add_argument(
        "--plain-http",
        action="store_true",
        help="served over plain HTTP (make run): the session cookie is not Secure, unless"
        " instance/config.py or FLASKR_SESSION_COOKIE_SECURE sets it",
    )
    args = parser.parse_args(argv)

    try:
        app = configured_app()
    except InvalidSetting as error:
        # One line, no traceback: the message names the setting and what it must be.
        print(f"Start-up failed: {error}", file=sys.stderr)
        return 1
    config = hypercorn_config(args.config, args.bind, args.access_logfile)
    if args.plain_http:
        if use_plain_http_cookies(app):
            app.logger.warning(PLAIN_HTTP_LINE)
        # Workers (workers > 1) build their own app: the same default there.
        config.application_path = "flaskr_async.serving.plain_http:create_app()"
    if config.worker_class not in WORKER_CLASSES:
        print(
            f"Start-up failed: worker_class = {config.worker_class!r} in the hypercorn config"
            f" must be one of {', '.join(WORKER_CLASSES)}",
            file=sys.stderr,
        )
        return 1
    # Each address checked before anything binds: one line naming it, the cause and the fix.
    problem = binds_problem([*config.bind, *(config.insecure_bind if config.ssl_enabled else [])])
    if problem is not None:
        app.logger.error("Start-up failed: %s", problem)
        return 1
    try:
        if config.workers > 1:
            asyncio.run(check_startup(app))
            with streams_end_first():
                return run(config)
        # In this process, so hypercorn's worker_class is ours to honour (run() does for workers).
        with asyncio.Runner(loop_factory=event_loop_factory(config)) as runner:
            return runner.run(serve_until_stopped(app, config))
    # Whatever stops start-up, the caller must see a non-zero status. The app's own failure
    # was logged where it happened (one line naming the setting, or Quart's traceback).
    except LifespanFailureError:
        app.logger.error("Start-up failed: the reason is logged above.")
        return 1
    except Exception as error:
        app.logger.error("Start-up failed: %s", listen_failure(error, config.bind) or error)
        return 1
