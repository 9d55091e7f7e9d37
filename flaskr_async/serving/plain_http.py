"""make run's plain HTTP: no Secure session cookie, unless config.py or the environment says.

A Secure cookie never comes back over http to a script (httpx, requests), so every form post
of one would be refused. The serve command's ``--plain-http`` (which ``make run`` passes) turns
Secure off only where neither instance/config.py nor FLASKR_SESSION_COOKIE_SECURE sets it: an
operator's own choice is never overridden. Anything else serving the app (the systemd unit,
``hypercorn asgi:app``) keeps the setting's default, Secure.
"""

from __future__ import annotations

import os

from quart import Config
from quart import Quart

import flaskr_async
from flaskr_async.setting_rules import cross_site
from flaskr_async.settings import PREFIX

NAME = "SESSION_COOKIE_SECURE"
LINE = (
    "The session cookie is not Secure: make run serves plain HTTP (--plain-http), where scripts"
    f" never send a Secure cookie back. Set {NAME} (instance/config.py, or {PREFIX}{NAME}) to"
    " override."
)


def set_by_operator(app: Quart) -> bool:
    """Tell whether instance/config.py or the environment sets SESSION_COOKIE_SECURE."""
    if PREFIX + NAME in os.environ:
        return True
    from_file = Config(app.instance_path)
    from_file.from_pyfile("config.py", silent=True)
    return NAME in from_file


def use_plain_http_cookies(app: Quart) -> bool:
    """Turn the session cookie's Secure flag off unless the operator set it; True if turned off."""
    # SameSite=None is refused by browsers on a cookie that is not Secure: it stays Secure.
    if set_by_operator(app) or cross_site(app.config):
        return False
    app.config[NAME] = False
    return True


def create_app() -> Quart:
    """Create the app as a worker process serves it under --plain-http (the master logs why)."""
    app = flaskr_async.create_app()
    use_plain_http_cookies(app)
    return app
