"""config.py: a name Quart would ignore that was meant for a setting is refused, naming it."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import quart_wtf
from quart import Quart

from flaskr_async import create_app
from flaskr_async.config_file import QUART_WTF
from flaskr_async.settings import InvalidSetting
from tests.servers import TEST_SECRET_KEY

KEY = f"SECRET_KEY = {TEST_SECRET_KEY!r}\n"


@pytest.fixture
def instance_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Give every app built in the test an instance folder, and no FLASKR_ setting."""
    folder = tmp_path / "instance"
    folder.mkdir()
    monkeypatch.setattr(Quart, "auto_find_instance_path", lambda self: str(folder))
    for name in [name for name in os.environ if name.startswith("FLASKR_")]:
        monkeypatch.delenv(name)
    return folder


REFUSED = {
    # attack 26: the cookie went without Secure, silently
    "SESSION_COOKIE_SECUR = True": ("SESSION_COOKIE_SECUR", "did you mean SESSION_COOKIE_SECURE?"),
    "POSTS_PER_PAG = 5": ("POSTS_PER_PAG", "did you mean POSTS_PER_PAGE?"),
    "DEBG = False": ("DEBG", "did you mean DEBUG?"),
    "TRUSTED_HOST = ['example.org']": ("TRUSTED_HOST", "did you mean TRUSTED_HOSTS?"),
    "LIVE_MAX_STREAM: int = 10": ("LIVE_MAX_STREAM", "did you mean LIVE_MAX_STREAMS?"),
    "if True:\n    SECRET_KEYS = ['x']": ("SECRET_KEYS", "did you mean SECRET_KEY?"),
    "posts_per_page = 5": (
        "posts_per_page",
        "Quart reads upper-case names only: did you mean POSTS_PER_PAGE?",
    ),
    "FLASKR_POSTS_PER_PAGE = 5": (
        "FLASKR_POSTS_PER_PAGE",
        "write POSTS_PER_PAGE (FLASKR_ names are for the environment)",
    ),
}
ACCEPTED = [
    "SESSION_COOKIE_SECURE = True",
    "SESSION_COOKIE_DOMAIN = 'example.org'",  # Quart's
    "WTF_CSRF_SSL_STRICT = True",  # Quart-WTF's, which it defaults only later
    "MAIL_DEBUG = True\nMAIL_SERVER = 'smtp.example.org'",  # another extension's
    "import os\nbase = os.path.dirname(__file__)\nfor item in []:\n    pass",
    "debug = True\nDEBUG = debug",  # a lower-case helper beside the setting itself
    "def helper():\n    posts_per_page = 1\n    return posts_per_page",
    "class Names:\n    POSTS_PER_PAG = 1",
    "POSTS_PER_PAGE = (lambda debg: debg)(5)",
]


@pytest.mark.parametrize(("text", "refusal"), REFUSED.items(), ids=list(REFUSED))
def test_a_name_meant_for_a_setting_is_refused(
    instance_path: Path, text: str, refusal: tuple[str, str]
) -> None:
    (instance_path / "config.py").write_text(KEY + text + "\n")
    name, hint = refusal
    with pytest.raises(InvalidSetting) as error:
        create_app()
    path = instance_path / "config.py"
    assert str(error.value) == f"{name} in {path} is not a setting of this app: {hint}"


@pytest.mark.parametrize("text", ACCEPTED)
def test_other_names_are_left_alone(instance_path: Path, text: str) -> None:
    (instance_path / "config.py").write_text(KEY + text + "\n")
    assert create_app().config["SECRET_KEY"] == TEST_SECRET_KEY


def test_every_refusal_is_in_one_line_with_the_environments(
    instance_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (instance_path / "config.py").write_text(KEY + "DEBG = 1\nTESTNG = 1\n")
    monkeypatch.setenv("FLASKR_POSTS_PER_PAG", "5")
    with pytest.raises(InvalidSetting) as error:
        create_app()
    message = str(error.value)
    assert message.startswith("3 settings are invalid: DEBG in ")
    assert "; TESTNG in " in message and message.endswith("did you mean FLASKR_POSTS_PER_PAGE?")


def test_no_config_file_and_the_test_config_are_not_read(instance_path: Path) -> None:
    assert create_app().config["SECRET_KEY"] == "dev"
    (instance_path / "config.py").write_text("DEBG = 1\n")
    assert create_app({"TESTING": True}).config["TESTING"] is True


def test_quart_wtf_settings_are_all_known() -> None:
    source = Path(quart_wtf.__file__).with_name("csrf.py").read_text()
    assert set(re.findall(r'"(WTF_[A-Z_]+)"', source)) <= QUART_WTF
