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
    # Second attack: Quart's and Quart-WTF's names, a lower-case misspelling.
    "SESSION_COOKIE_DOMIAN = 'x.org'": (
        "SESSION_COOKIE_DOMIAN",
        "did you mean SESSION_COOKIE_DOMAIN?",
    ),
    "PREFERED_URL_SCHEME = 'https'": ("PREFERED_URL_SCHEME", "did you mean PREFERRED_URL_SCHEME?"),
    "WTF_CSRF_SSL_STRIC = False": ("WTF_CSRF_SSL_STRIC", "did you mean WTF_CSRF_SSL_STRICT?"),
    "session_cookie_secur = True": (
        "session_cookie_secur",
        "Quart reads upper-case names only: did you mean SESSION_COOKIE_SECURE?",
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


# config.py that fails to run: one line naming the file, its line and the error.
BROKEN = {
    "SECRET_KEY = (": "line 2: '(' was never closed",
    "import no_such_module_here": "line 2: ModuleNotFoundError: No module named"
    " 'no_such_module_here'",
    "x = 1\nPOSTS_PER_PAGE = 1 / 0": "line 3: ZeroDivisionError: division by zero",
}


@pytest.mark.parametrize(("text", "fault"), BROKEN.items(), ids=list(BROKEN))
def test_a_config_file_that_fails_to_run_is_one_line(
    instance_path: Path, text: str, fault: str
) -> None:
    (instance_path / "config.py").write_text(KEY + text + "\n")
    with pytest.raises(InvalidSetting) as error:
        create_app()
    assert str(error.value) == f"{instance_path / 'config.py'}, {fault}"


def test_a_failure_raised_outside_the_file_names_the_file(
    instance_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error raised in a module config.py imports: its line is not config.py's."""
    (tmp_path / "broken_helper.py").write_text("raise RuntimeError('helper failed')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    (instance_path / "config.py").write_text(KEY + "import broken_helper\n")
    with pytest.raises(InvalidSetting) as error:
        create_app()
    path = instance_path / "config.py"
    assert str(error.value) == f"{path}, line 2: RuntimeError: helper failed"


def test_a_config_file_that_cannot_be_read_is_one_line(instance_path: Path) -> None:
    """Not missing (that is no config.py) but unreadable: a link to itself, say."""
    path = instance_path / "config.py"
    path.symlink_to(path)
    with pytest.raises(InvalidSetting) as error:
        create_app()
    assert str(error.value).startswith(f"{path}: OSError: [Errno 40] Unable to load")
