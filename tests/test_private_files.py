"""Every place that writes a file holding secrets or data, in one table (private_files.py).

Each writer is checked for what issue 26 asks of them all: a new file is 0600 from its first
byte under the usual umask 022, made exclusively without following a link; a link at its name,
an existing file open to others or another user's file is refused with one line naming it and
the fix; and a file swapped while it is written is reported, not announced as written.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import stat
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from quart import Quart

from flaskr_async import create_app
from flaskr_async import load_settings
from flaskr_async import private_files
from flaskr_async.db import opened
from flaskr_async.serving import command
from tests.postgres_server import scratch_database
from tests.servers import TEST_SECRET_KEY

BAIT = b"the link's target, which no writer may touch\n"


@dataclass(frozen=True)
class Writer:
    """One place that writes a file, and what the table may ask of it."""

    name: str  # the file's name in the folder the test gives
    write: Callable[[Path, pytest.FixtureRequest], None]  # raises with the one line if refused
    makes: str  # "app": the app creates it (os.open); "sqlite": SQLite does, with the db's mode
    existing: str  # "used": a private existing file is used; "refused": any existing one is
    fix: str  # what the refusal of a file open to others says to do ("" for "refused" writers)


def app_config(database: str) -> dict[str, Any]:
    """Return every setting of a test app on this database, as the commands see them."""
    return dict(
        create_app({"TESTING": True, "SECRET_KEY": TEST_SECRET_KEY, "DATABASE": database}).config
    )


def write_key(folder: Path, _request: pytest.FixtureRequest) -> None:
    """Run the serve command's first-run step: a random SECRET_KEY into config.py."""
    app = Quart("flaskr_async", instance_path=str(folder))
    load_settings(app, {})  # no key from anywhere: "dev"
    command.ensure_secret_key(app)


# The modes SQLite gave the files it made beside the database, seen while they existed.
SEEN: dict[str, int] = {}


def open_database(folder: Path, _request: pytest.FixtureRequest) -> None:
    """Open the SQLite database as serving does, write a row, and note the modes of its files."""

    async def use() -> None:
        async with opened(app_config(str(folder / "flaskr.sqlite")), pool_size=1) as database:
            await database.execute("INSERT INTO \"user\" (username, password) VALUES ('a', 'b')")
            for path in folder.iterdir():
                SEEN[path.name] = stat.S_IMODE(path.stat().st_mode)

    asyncio.run(use())


def backup(database: str, target: Path) -> None:
    """Run the backup command of an app on this database into target."""
    result = create_app(app_config(database)).test_cli_runner().invoke(args=["backup", str(target)])
    if result.exit_code != 0:
        raise RuntimeError(result.output)


def backup_sqlite(folder: Path, _request: pytest.FixtureRequest) -> None:
    """Back up a SQLite database kept in a private folder elsewhere."""
    source = folder.parent / "source"
    source.mkdir(mode=0o700, exist_ok=True)
    backup(str(source / "flaskr.sqlite"), folder / "copy.backup")


def backup_postgres(folder: Path, request: pytest.FixtureRequest) -> None:
    """Back up a fresh PostgreSQL database (pg_dump writes to the target's descriptor)."""
    server: str = request.getfixturevalue("postgres_server")
    with scratch_database(server) as url:
        backup(url, folder / "copy.backup")


KEY = Writer("config.py", write_key, "app", "used", "chmod 600")
WRITERS = {
    "key in config.py": KEY,
    "SQLite database": Writer("flaskr.sqlite", open_database, "app", "used", "chmod 600"),
    "its -wal": Writer("flaskr.sqlite-wal", open_database, "sqlite", "used", "chmod 600"),
    "its -shm": Writer("flaskr.sqlite-shm", open_database, "sqlite", "used", "chmod 600"),
    # SQLite makes it only outside WAL mode (for a moment at creation): checked when present.
    "its -journal": Writer("flaskr.sqlite-journal", open_database, "sqlite", "used", "chmod 600"),
    "SQLite backup": Writer("copy.backup", backup_sqlite, "app", "refused", ""),
    "PostgreSQL backup": Writer("copy.backup", backup_postgres, "app", "refused", ""),
}
# The PostgreSQL row needs a server: a system test, as every PostgreSQL test is.
ROWS = [
    pytest.param(name, marks=[pytest.mark.system] if "PostgreSQL" in name else [])
    for name in WRITERS
]
# The writers that write through their descriptor (SQLite writes the database by its name).
THROUGH_A_DESCRIPTOR = [
    row for row in ROWS if "key" in str(row.values[0]) or "backup" in str(row.values[0])
]


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Give the writer an ordinary folder, under the usual umask 022, with no FLASKR_ setting."""
    for name in [name for name in os.environ if name.startswith("FLASKR_")]:
        monkeypatch.delenv(name)
    folder = tmp_path / "data"
    folder.mkdir(mode=0o755)
    previous = os.umask(0o022)
    SEEN.clear()
    try:
        yield folder
    finally:
        os.umask(previous)


@pytest.fixture
def opens(monkeypatch: pytest.MonkeyPatch) -> dict[str, tuple[int, int]]:
    """Record each os.open call: path -> (flags, mode) of its first call."""
    calls: dict[str, tuple[int, int]] = {}
    real_open = os.open

    def recording(path: Any, flags: int, mode: int = 0o777, **kwargs: Any) -> int:
        calls.setdefault(os.fspath(path), (flags, mode))
        return real_open(path, flags, mode, **kwargs)

    monkeypatch.setattr(os, "open", recording)
    return calls


def refusal(writer: Writer, folder: Path, request: pytest.FixtureRequest) -> str:
    """Run the writer, which must refuse; return its one line."""
    with pytest.raises(Exception) as error:  # noqa: B017 - each writer has its own exception
        writer.write(folder, request)
    message = str(error.value).strip()
    assert "\n" not in message, message
    return message


def prepare(writer: Writer, folder: Path) -> None:
    """Give a writer of SQLite's companion files the (private) database beside them."""
    if writer.makes == "sqlite":
        database = folder / "flaskr.sqlite"
        os.close(private_files.create(str(database)))


@pytest.mark.parametrize("row", ROWS)
def test_a_new_file_is_owner_only_from_its_first_byte(
    folder: Path, opens: dict[str, tuple[int, int]], request: pytest.FixtureRequest, row: str
) -> None:
    writer = WRITERS[row]
    path = folder / writer.name
    writer.write(folder, request)
    if writer.makes == "sqlite":
        # SQLite gives the files it adds the database file's mode bits (0600, as created here).
        if writer.name.endswith("-journal") and writer.name not in SEEN:
            return
        assert SEEN[writer.name] == 0o600
        return
    # Created exclusively, no link followed, 0600 in the call that made it (no chmod after).
    flags, mode = opens[str(path)]
    assert (
        flags & (os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW) == os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    )
    assert mode == 0o600
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.stat().st_size > 0


@pytest.mark.parametrize("row", ROWS)
def test_a_link_at_the_name_is_refused(
    folder: Path, tmp_path: Path, request: pytest.FixtureRequest, row: str
) -> None:
    writer = WRITERS[row]
    prepare(writer, folder)
    bait = tmp_path / "bait"
    bait.write_bytes(BAIT)
    bait.chmod(0o600)
    (folder / writer.name).symlink_to(bait)
    message = refusal(writer, folder, request)
    if writer.existing == "refused":
        assert f"{folder / writer.name} already exists" in message
    else:
        assert f"{folder / writer.name} is a symbolic link, which is not followed" in message
    assert bait.read_bytes() == BAIT


@pytest.mark.parametrize("row", ROWS)
def test_an_existing_file_open_to_others_is_refused(
    folder: Path, request: pytest.FixtureRequest, row: str
) -> None:
    writer = WRITERS[row]
    prepare(writer, folder)
    path = folder / writer.name
    path.write_bytes(b"")
    path.chmod(0o644)
    message = refusal(writer, folder, request)
    if writer.existing == "refused":
        assert f"{path} already exists" in message
    else:
        assert f"{path} is open to other users (mode 0644): {writer.fix} {path}" in message
    assert path.read_bytes() == b""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file to another user")
@pytest.mark.parametrize("row", ROWS)
def test_another_user_s_file_is_refused(
    folder: Path, request: pytest.FixtureRequest, row: str
) -> None:
    writer = WRITERS[row]
    prepare(writer, folder)
    path = folder / writer.name
    path.write_bytes(b"")
    path.chmod(0o600)
    os.chown(path, pwd.getpwnam("nobody").pw_uid, -1)
    message = refusal(writer, folder, request)
    if writer.existing == "refused":
        assert f"{path} already exists" in message
    else:
        assert f"{path} belongs to nobody, not to root, who runs this: run it as nobody" in message
        assert "(runuser -u nobody -- followed by the command)" in message
        assert "chown" not in message
    assert path.read_bytes() == b""


@pytest.mark.parametrize("row", THROUGH_A_DESCRIPTOR)
def test_a_file_swapped_while_it_is_written_is_reported(
    folder: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    row: str,
) -> None:
    """What another user who can write to the folder could do: move the file, put theirs."""
    writer = WRITERS[row]
    path = folder / writer.name
    moved = tmp_path / "moved"

    def swap() -> None:
        if not moved.exists():
            os.rename(path, moved)
            path.write_bytes(b"")  # the other user's empty file, open to all
            path.chmod(0o666)

    real_write_all = private_files.write_all

    def swapping_write_all(descriptor: int, data: bytes) -> None:
        swap()
        real_write_all(descriptor, data)

    monkeypatch.setattr(private_files, "write_all", swapping_write_all)
    real_exec = asyncio.create_subprocess_exec

    async def swapping_exec(*args: Any, **kwargs: Any) -> Any:
        swap()  # pg_dump writes to the descriptor itself
        return await real_exec(*args, **kwargs)

    monkeypatch.setattr(asyncio, "create_subprocess_exec", swapping_exec)
    message = refusal(writer, folder, request)
    assert f"{path} was moved, replaced or linked while it was written" in message
    assert path.read_bytes() == b""  # nothing reached the other user's file
    assert stat.S_IMODE(moved.stat().st_mode) == 0o600  # what was written stayed private
    assert moved.stat().st_size > 0


def test_a_user_the_system_does_not_know_is_named_by_id() -> None:
    assert private_files.user_name(2**31 - 2) == str(2**31 - 2)


def test_opening_a_missing_file_keeps_its_own_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        private_files.open_existing(str(tmp_path / "gone" / "config.py"), os.O_RDONLY)


def test_a_file_removed_while_it_is_written_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "copy"
    with pytest.raises(private_files.UnsafeFile, match="was moved, replaced or linked while"):
        with private_files.created(str(path)) as descriptor:
            private_files.write_all(descriptor, b"data")
            path.unlink()
    assert not path.exists()


@pytest.mark.parametrize(
    ("owner", "uid", "fix"),
    [
        # Root taking the service's file would lock the service out: run as its owner.
        ("flaskr", 0, "run it as flaskr (runuser -u flaskr -- followed by the command)"),
        # A user meeting root's file: it may be one root made by mistake.
        ("root", 65534, "run it as root, or (as root) chown nobody /x if it should be nobody's"),
    ],
)
def test_another_user_s_file_is_refused_with_a_fix_that_does_no_harm(
    owner: str, uid: int, fix: str
) -> None:
    me = private_files.user_name(uid)
    message = private_files.not_yours("/x", owner, uid)
    assert message == f"/x belongs to {owner}, not to {me}, who runs this: {fix}"
