"""The serve entry point and a real hypercorn: start-up, first-run secret, failures, clean stop."""

from __future__ import annotations

import asyncio
import errno
import os
import runpy
import signal
import socket
import sqlite3
import stat
import sys
import threading
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import httpx
import pytest
from hypercorn.config import Config
from quart import Quart

from flaskr_async import create_app
from flaskr_async import load_settings
from flaskr_async.serving import command as entry_point
from flaskr_async.serving import shutdown
from flaskr_async.serving.access_log import EscapedAccessLogger
from flaskr_async.serving.listening import UNIX_PATH_MAX
from flaskr_async.serving.listening import bind_problem
from flaskr_async.serving.listening import binds_problem
from flaskr_async.serving.listening import listen_failure
from tests.servers import ROOT
from tests.servers import TEST_SECRET_KEY
from tests.servers import TLS
from tests.servers import free_port
from tests.servers import hypercorn_command
from tests.servers import running
from tests.servers import server_env
from tests.servers import start
from tests.servers import wait_until_serving

SERVE = [sys.executable, "-m", "flaskr_async", "serve"]


def wal_of(database: Path) -> Path:
    """Return the path of a SQLite database's write-ahead log."""
    return database.with_name(database.name + "-wal")


def post_count(database: Path) -> int:
    """Count the posts in a SQLite file the server has closed."""
    with closing(sqlite3.connect(database)) as connection:
        return int(connection.execute("SELECT count(*) FROM post").fetchone()[0])


@pytest.mark.system
def test_hypercorn_serves_and_stops_cleanly(tmp_path: Path) -> None:
    database = tmp_path / "flaskr.sqlite"
    port = free_port()
    with running(hypercorn_command(port), server_env(database), port) as server:
        assert httpx.get(server.url + "/hello", verify=TLS).text == "Hello, World!"
        index = httpx.get(server.url + "/", verify=TLS)  # reads the database
        assert index.status_code == 200
        assert "Log In" in index.text
        assert wal_of(database).exists()  # the server holds the database open
        assert server.stop() == 0
        output = server.output()
    assert f"Database opened: {database}" in output
    assert f"Database closed: {database}" in output
    # The last connection's close checkpoints the log away: nothing is left half-written.
    assert not wal_of(database).exists()
    assert post_count(database) == 0


@pytest.mark.system
@pytest.mark.parametrize("make_unusable", ["directory", "unwritable", "corrupt"])
def test_serve_exits_non_zero_on_an_unusable_database(tmp_path: Path, make_unusable: str) -> None:
    database = tmp_path / "flaskr.sqlite"
    if make_unusable == "directory":
        database.mkdir()
    elif make_unusable == "unwritable":
        database = Path("/proc/flaskr.sqlite")  # no one, root included, creates files here
    else:
        database.write_bytes(b"this is not a database" * 100)
        database.chmod(0o600)  # owner-only, or it is refused before SQLite ever reads it
    port = free_port()
    server = start([*SERVE, "--bind", f"127.0.0.1:{port}"], server_env(database), port)
    assert server.process.wait(30) == 1
    output = server.output()
    # One line says why, once: no second copy from the entry point, no traceback.
    assert output.count(f"Cannot use DATABASE {str(database)!r}") == 1, output
    assert "Start-up failed: the reason is logged above." in output
    assert "Traceback" not in output


@pytest.mark.system
def test_plain_hypercorn_hides_a_failed_start_up(tmp_path: Path) -> None:
    """Document why the serve wrapper exists: hypercorn alone exits 0 here."""
    port = free_port()
    server = start(hypercorn_command(port), server_env(tmp_path), port)
    assert server.process.wait(30) == 0
    assert f"Cannot use DATABASE {str(tmp_path)!r}" in server.output()


@pytest.mark.system
def test_serve_refuses_the_development_secret_key(tmp_path: Path) -> None:
    port = free_port()
    env = server_env(tmp_path / "flaskr.sqlite", SECRET_KEY="too-short")
    server = start([*SERVE, "--bind", f"127.0.0.1:{port}"], env, port)
    assert server.process.wait(30) == 1
    output = server.output()
    assert "Start-up failed: SECRET_KEY = '<redacted, 9 bytes>' (from FLASKR_SECRET_KEY)" in output
    assert f"set it in {ROOT / 'instance' / 'config.py'} (SECRET_KEY" in output  # the clone's
    assert "FLASKR_SECRET_KEY" in output
    assert "Traceback" not in output


@pytest.fixture
def instance_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Put the app's instance folder in tmp_path, as an installed package puts it elsewhere."""
    path = tmp_path / "instance"
    monkeypatch.setattr(Quart, "auto_find_instance_path", lambda self: str(path))
    return path


@pytest.fixture
def serve_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the entry point at a fresh database; return its path."""
    for name, value in server_env(tmp_path / "flaskr.sqlite").items():
        monkeypatch.setenv(name, value)
    return tmp_path / "flaskr.sqlite"


@pytest.fixture
def signal_handlers() -> Iterator[None]:
    """Restore the signal handlers hypercorn's multi-worker runner replaces."""
    names = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    saved = {name: signal.getsignal(name) for name in names}
    yield
    for name, handler in saved.items():
        signal.signal(name, handler)


def terminate_once_serving(port: int, visit: Callable[[str], None]) -> threading.Thread:
    """Start a thread that waits for the server, visits it, then sends this process SIGTERM."""

    def run() -> None:
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_serving_url(url)
            visit(url)
        finally:
            os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def wait_until_serving_url(url: str) -> None:
    """Poll /hello of an in-process server until it answers."""
    for _ in range(400):
        try:
            if httpx.get(url + "/hello", timeout=1, verify=TLS).status_code == 200:
                return
        except httpx.TransportError:
            threading.Event().wait(0.05)
    raise TimeoutError(url)  # pragma: no cover - only when the server never comes up


def test_main_writes_a_secret_key_on_first_run_and_serves(
    instance_path: Path, serve_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLASKR_SECRET_KEY")
    seen: dict[str, int] = {}

    def visit(url: str) -> None:
        seen["index"] = httpx.get(url + "/", verify=TLS).status_code

    port = free_port()
    thread = terminate_once_serving(port, visit)
    assert entry_point.main(["serve", "--bind", f"127.0.0.1:{port}"]) == 0
    thread.join()
    assert seen == {"index": 200}
    config = instance_path / "config.py"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    key = create_app().config["SECRET_KEY"]
    assert len(key) == 64 and key != "dev"
    assert not wal_of(serve_environment).exists()


def unchecked_app(test_config: dict[str, str] | None = None) -> Quart:
    """Return a bare app holding the loaded settings, as the serve command reads them."""
    app = Quart("flaskr_async", instance_relative_config=True)
    load_settings(app, test_config)
    return app


def test_ensure_secret_key_keeps_a_configured_key(instance_path: Path) -> None:
    assert entry_point.ensure_secret_key(unchecked_app({"SECRET_KEY": TEST_SECRET_KEY})) is False
    assert not (instance_path / "config.py").exists()


def test_ensure_secret_key_appends_to_an_existing_config(instance_path: Path) -> None:
    instance_path.mkdir()
    (instance_path / "config.py").write_text("POSTS_PER_PAGE = 7\n")
    (instance_path / "config.py").chmod(0o600)
    assert entry_point.ensure_secret_key(unchecked_app()) is True
    app = create_app()
    assert app.config["POSTS_PER_PAGE"] == 7
    assert app.config["SECRET_KEY"] != "dev"


def test_main_serves_several_workers(
    tmp_path: Path, serve_environment: Path, signal_handlers: None
) -> None:
    config = tmp_path / "hypercorn.toml"
    port = free_port()
    config.write_text(f'bind = ["127.0.0.1:{port}"]\nworkers = 2\n')

    def visit(url: str) -> None:
        assert httpx.get(url + "/", verify=TLS).status_code == 200

    thread = terminate_once_serving(port, visit)
    assert entry_point.main(["serve", "--config", str(config)]) == 0
    thread.join()
    assert post_count(serve_environment) == 0


def test_main_checks_start_up_before_forking_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("FLASKR_SECRET_KEY", TEST_SECRET_KEY)
    monkeypatch.setenv("FLASKR_DATABASE", str(tmp_path))  # a directory: unusable
    config = tmp_path / "hypercorn.toml"
    config.write_text(f'bind = ["127.0.0.1:{free_port()}"]\nworkers = 2\n')
    assert entry_point.main(["serve", "--config", str(config)]) == 1
    assert caplog.text.count(f"Cannot use DATABASE {str(tmp_path)!r}") == 1
    assert "Start-up failed: the reason is logged above." in caplog.text
    assert all(record.exc_info is None for record in caplog.records)


def test_main_names_a_failure_to_listen_after_the_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("FLASKR_SECRET_KEY", TEST_SECRET_KEY)
    monkeypatch.setenv("FLASKR_DATABASE", str(tmp_path / "flaskr.sqlite"))
    # As if the descriptor closed between the check and hypercorn's bind (a race).
    monkeypatch.setattr(entry_point, "binds_problem", lambda binds: None)
    assert entry_point.main(["serve", "--bind", "fd://987654"]) == 1
    assert (
        "Start-up failed: cannot listen on fd://987654: a file descriptor given with fd:// is not"
        " open" in caplog.text
    )


def test_main_names_an_address_it_cannot_listen_on_before_binding(
    serve_environment: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    binds = ["--bind", f"127.0.0.1:{port}", "--bind", "fd://987654"]
    assert entry_point.main(["serve", *binds]) == 1
    # The bad one alone is named; the good one was let go (hypercorn leaks what it bound).
    assert "Start-up failed: cannot listen on fd://987654: no file descriptor 987654" in caplog.text
    socket.create_server(("127.0.0.1", port)).close()


def test_hypercorn_config_binds_loopback_unless_told(tmp_path: Path) -> None:
    assert entry_point.hypercorn_config(None, []).bind == ["127.0.0.1:8000"]
    assert entry_point.hypercorn_config(None, ["0.0.0.0:9000"]).bind == ["0.0.0.0:9000"]
    config = tmp_path / "hypercorn.toml"
    config.write_text('bind = ["127.0.0.1:8123"]\naccesslog = "-"\n')
    from_file = entry_point.hypercorn_config(str(config), [])
    assert from_file.bind == ["127.0.0.1:8123"]
    assert from_file.application_path == "flaskr_async:create_app()"
    assert from_file.accesslog == "-"
    assert entry_point.hypercorn_config(None, []).accesslog is None  # hypercorn's default: off
    assert entry_point.hypercorn_config(None, [], "access.log").accesslog == "access.log"
    # However the access log is turned on (here or in the file), the client's text is escaped.
    assert from_file.logger_class is EscapedAccessLogger


def test_hypercorn_s_own_command_can_take_the_escaping_logger() -> None:
    # `hypercorn --config python:flaskr_async.serving.access_log --access-logfile - asgi:app`
    config = Config.from_object("flaskr_async.serving.access_log")
    assert config.logger_class is EscapedAccessLogger
    assert config.bind == ["127.0.0.1:8000"]  # nothing else of hypercorn's defaults changed


def test_shipped_hypercorn_config_is_valid() -> None:
    config = entry_point.hypercorn_config(str(ROOT / "hypercorn.toml"), [])
    assert config.include_server_header is False
    # The app checks Host (TRUSTED_HOSTS): hypercorn's own check leaks connections.
    assert config.server_names == []
    # nginx logs every request; hypercorn's own access log cost 14 % of the index's CPU.
    assert config.accesslog is None
    assert config.errorlog is not None
    assert config.graceful_timeout > 0
    assert config.worker_class == "uvloop"


@pytest.mark.parametrize(
    ("worker_class", "loop_class"), [("uvloop", "uvloop.Loop"), ("asyncio", "asyncio.")]
)
def test_serve_runs_on_the_configured_event_loop(
    tmp_path: Path, serve_environment: Path, worker_class: str, loop_class: str
) -> None:
    config = tmp_path / "hypercorn.toml"
    port = free_port()
    config.write_text(f'bind = ["127.0.0.1:{port}"]\nworker_class = "{worker_class}"\n')
    seen: dict[str, str] = {}

    def visit(url: str) -> None:
        assert httpx.get(url + "/", verify=TLS).status_code == 200

    app_loop = entry_point.serve_until_stopped

    async def record_loop(app: Quart, config: Config) -> int:
        loop = asyncio.get_running_loop()
        seen["loop"] = f"{type(loop).__module__}.{type(loop).__qualname__}"
        return await app_loop(app, config)

    thread = terminate_once_serving(port, visit)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(entry_point, "serve_until_stopped", record_loop)
        assert entry_point.main(["serve", "--config", str(config)]) == 0
    thread.join()
    assert seen["loop"].startswith(loop_class)


@pytest.mark.system
def test_serve_process_stops_cleanly(tmp_path: Path) -> None:
    database = tmp_path / "flaskr.sqlite"
    port = free_port()
    server = start([*SERVE, "--bind", f"127.0.0.1:{port}"], server_env(database), port)
    try:
        wait_until_serving(server)
        assert httpx.get(server.url + "/", verify=TLS).status_code == 200
    finally:
        status = server.stop()
    assert status == 0
    assert f"Database closed: {database}" in server.output()
    assert not wal_of(database).exists()


@pytest.mark.parametrize("worker_class", ["trio", "uvlop"])
def test_serve_refuses_a_worker_class_the_app_cannot_run_on(
    tmp_path: Path, serve_environment: Path, worker_class: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "hypercorn.toml"
    config.write_text(f'bind = ["127.0.0.1:{free_port()}"]\nworker_class = "{worker_class}"\n')
    assert entry_point.main(["serve", "--config", str(config)]) == 1
    assert capsys.readouterr().err == (
        f"Start-up failed: worker_class = {worker_class!r} in the hypercorn config must be one"
        " of asyncio, uvloop\n"
    )


async def test_the_stop_signal_is_heard_where_the_loop_cannot_handle_signals(
    monkeypatch: pytest.MonkeyPatch, signal_handlers: None
) -> None:
    def unsupported(*_: object) -> None:
        raise NotImplementedError  # as on Windows' event loops

    monkeypatch.setattr(asyncio.get_running_loop(), "add_signal_handler", unsupported)
    waiting = asyncio.create_task(shutdown.signalled())
    await asyncio.sleep(0.05)  # it has installed its handlers
    assert not waiting.done()
    signal.raise_signal(signal.SIGTERM)
    await asyncio.wait_for(waiting, 5)


def test_python_m_flaskr_async_runs_the_serve_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["flaskr_async", "--help"])
    with pytest.raises(SystemExit) as exited:
        runpy.run_module("flaskr_async", run_name="__main__")
    assert exited.value.code == 0
    assert "usage: python -m flaskr_async" in capsys.readouterr().out


@pytest.mark.system
@pytest.mark.parametrize(
    ("host", "workers", "reason", "fix"),
    [
        ("127.0.0.1", 1, "the address is already in use", "127.0.0.1:{next}"),
        ("127.0.0.1", 2, "the address is already in use", "127.0.0.1:{next}"),
        ("192.0.2.1", 1, "that address is not one of this machine's", "127.0.0.1:8000"),
        ("no-such-host.invalid", 1, "the host name is unknown", "127.0.0.1:8000"),
    ],
)
def test_serve_names_the_address_it_cannot_listen_on_and_the_fix(
    tmp_path: Path, host: str, workers: int, reason: str, fix: str
) -> None:
    port = free_port()
    config = tmp_path / "hypercorn.toml"
    config.write_text(f"workers = {workers}\n")
    with socket.create_server(("127.0.0.1", port)):  # taken, for the in-use case
        server = start(
            [*SERVE, "--config", str(config), "--bind", f"{host}:{port}"],
            server_env(tmp_path / "flaskr.sqlite"),
            port,
        )
        assert server.process.wait(30) == 1
    lines = [line for line in server.output().splitlines() if "Start-up failed" in line]
    assert len(lines) == 1, lines
    assert f"Start-up failed: cannot listen on {host}:{port}: {reason}" in lines[0]
    address = fix.format(next=port + 1)
    assert f"make run BIND={address}, or --bind {address} (python -m flaskr_async serve" in lines[0]


@pytest.mark.parametrize(
    ("error", "binds", "says"),
    [
        (PermissionError(errno.EACCES, "Permission denied"), ["0.0.0.0:80"], "port below 1024"),
        (OSError(errno.EADDRINUSE, "in use"), ["[::1]:8000"], "--bind [::1]:8001"),
        (OSError(errno.EADDRINUSE, "in use"), [], "--bind 127.0.0.1:8001"),
        (OSError(errno.EADDRNOTAVAIL, "not available"), ["192.0.2.1:80"], "not one of this"),
        (socket.gaierror(-2, "Name or service not known"), ["nohost:80"], "name is unknown"),
        (OSError(errno.EADDRINUSE, "in use"), ["unix:/run/f.sock"], "serve on another path"),
        (PermissionError(errno.EACCES, "Permission denied"), ["unix:/run/f.sock"], "Allow this"),
        (OSError(errno.ENOENT, "No such file"), ["unix:/run/f.sock"], "folder does not exist"),
        (OSError(errno.EBADF, "Bad file descriptor"), ["fd://9"], "fd:// is not open"),
        (OSError(errno.ENOENT, "No such file"), ["127.0.0.1:8000"], None),
        (ValueError("not an OSError"), ["127.0.0.1:8000"], None),
    ],
)
def test_listen_failures_say_the_cause_and_the_fix(
    error: Exception, binds: list[str], says: str | None
) -> None:
    line = listen_failure(error, binds)
    if says is None:
        assert line is None  # not a failure to listen: said as it is
    else:
        assert line is not None
        assert line.startswith(f"cannot listen on {', '.join(binds)}: ")
        assert says in line


@pytest.mark.system
def test_serve_logs_each_request_when_asked(tmp_path: Path) -> None:
    port = free_port()
    command = [*SERVE, "--bind", f"127.0.0.1:{port}", "--access-logfile", "-"]
    with running(command, server_env(tmp_path / "flaskr.sqlite"), port) as server:
        assert httpx.get(server.url + "/auth/login", verify=TLS).status_code == 200
        assert server.stop() == 0
        output = server.output()
    assert '"GET /auth/login 1.1" 200' in output


def exchange(port: int, request: bytes) -> bytes:
    """Send one raw request with Connection: close and return the whole response."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


# (request target, User-Agent, Referer, X-Note header) as sent -> the access log's line, exact.
ACCESS_LOG_FORMAT = '"%(r)s" "%(q)s" %(s)s "%(f)s" "%(a)s" "%({x-note}i)s"'
HOSTILE_REQUESTS = [
    # The attack: erase the watcher's lines and print a forged one.
    (
        b"/hello",
        b'\x1b[2K\x1b[1A\x1b[2K[INFO] 10.0.0.1 "GET /hello 1.1" 200 13',
        b"-",
        b"n",
        '"GET /hello 1.1" "" 200 "-" "\\x1B[2K\\x1B[1A\\x1B[2K[INFO] 10.0.0.1'
        ' \\"GET /hello 1.1\\" 200 13" "n"',
    ),
    # A quote forging fields, a backslash, DEL, C1 and latin-1 bytes.
    (
        b"/hello",
        b'x" 200 13 "-" "forged',
        b"http://e.test/\\\x7f\x85\x9b\xe9",
        b"n",
        '"GET /hello 1.1" "" 200 "http://e.test/\\\\\\x7F\\x85\\x9B\\xE9"'
        ' "x\\" 200 13 \\"-\\" \\"forged" "n"',
    ),
    # The path and query as sent (a quote, ESC, a C1 character in UTF-8), any header atom.
    (
        b"/hello%22%1b%C2%9b?q=%22%1b\x22",
        b"ua",
        b"-",
        b'\x1b]0;title\x07"',
        '"GET /hello%22%1b%C2%9b 1.1" "q=%22%1b\\"" 400 "-" "ua" "\\x1B]0;title\\x07\\""',
    ),
]


@pytest.mark.system
def test_serve_access_log_escapes_what_the_client_chose(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "hypercorn.toml"
    config.write_text(f"access_log_format = '{ACCESS_LOG_FORMAT}'\n")
    command = [*SERVE, "--config", str(config), "--bind", f"127.0.0.1:{port}"]
    command += ["--access-logfile", "-"]
    with running(command, server_env(tmp_path / "flaskr.sqlite"), port) as server:
        for target, agent, referer, note, _ in HOSTILE_REQUESTS:
            exchange(
                port,
                b"GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: %s\r\nReferer: %s\r\n"
                b"X-Note: %s\r\nConnection: close\r\n\r\n" % (target, agent, referer, note),
            )
        assert server.stop() == 0
        output = server.output()
    logged = [line.partition("[INFO] ")[2] for line in output.splitlines()]
    lines = [line for line in logged if line.startswith('"GET /hello') and "httpx" not in line]
    assert lines == [line for *_, line in HOSTILE_REQUESTS]
    assert "\x1b" not in output


@pytest.fixture
def bind_places(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Set up what each bind form can meet; return the values its bind text is made with."""
    taken = socket.create_server(("127.0.0.1", 0))
    live = socket.socket(socket.AF_UNIX)
    live.bind(str(tmp_path / "live.sock"))
    live.listen()
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(tmp_path / "stale.sock"))
    stale.close()  # the file stays: a server that stopped without removing it
    (tmp_path / "file").write_text("not a socket")
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listening = socket.create_server(("127.0.0.1", 0))
    with open(tmp_path / "file") as plain:
        closed = os.dup(plain.fileno())
        os.close(closed)
        yield {
            "tmp": str(tmp_path),
            "taken": str(taken.getsockname()[1]),
            "free": str(free_port()),
            "long": "x" * UNIX_PATH_MAX,
            # root writes anywhere but here (EPERM); others not in a folder closed to them
            "closed_folder": "/sys" if os.geteuid() == 0 else "/proc/1",
            "closed_fd": str(closed),
            "file_fd": str(plain.fileno()),
            "udp_fd": str(udp.fileno()),
            "listening_fd": str(listening.fileno()),
        }
    for sock in (taken, live, udp, listening):
        sock.close()


# Every bind form hypercorn takes, with each way it can fail: (bind, what the line says after
# "cannot listen on BIND: "; None: it can be listened on).
BIND_FORMS = [
    ("127.0.0.1:{free}", None),
    ("[::1]:{free}", None),
    ("127.0.0.1:0", None),
    ("unix:{tmp}/app.sock", None),
    ("unix:{tmp}/stale.sock", None),  # a stale socket: replaced, as hypercorn does
    ("fd://{listening_fd}", None),
    ("127.0.0.1:abc", "the port 'abc' is not a number. Give one from 1024 to 65535: make run"),
    ("127.0.0.1:", "the port '' is not a number"),
    ("127.0.0.1:\u0668\u0660", "the port '\u0668\u0660' is not a number"),  # Arabic digits
    ("127.0.0.1:99999", "the port 99999 is out of range (0-65535). Give one from 1024 up"),
    ("[::1]:x", "the port 'x' is not a number"),
    ("[::1]:70000", "the port 70000 is out of range"),
    ("::1", "an IPv6 address needs brackets, [address]:port: make run BIND=[::1]:8000"),
    ("[::1]", "an IPv6 address is written [address]:port. Give one: make run BIND=[::1]:8000"),
    ("[::1:{free}", "an IPv6 address is written [address]:port"),
    ("no-such-host.invalid:{free}", "the host name is unknown"),
    ("no-such-host.invalid", "the host name is unknown"),  # a bare host: port 8000
    ("192.0.2.1:{free}", "that address is not one of this machine's"),
    ("127.0.0.1:{taken}", "the address is already in use (another server, or an earlier one"),
    ("unix:", "no path after unix:. Give one: make run BIND=unix:PATH"),
    ("unix:{tmp}/missing/app.sock", "the folder {tmp}/missing does not exist. Create it"),
    ("unix:{tmp}/{long}", "the path is longer than a Unix socket's 107 bytes"),
    ("unix:{tmp}/file", "{tmp}/file exists and is not a socket. Move it away"),
    ("unix:{tmp}/live.sock", "another server is listening on {tmp}/live.sock. Stop it"),
    ("unix:{closed_folder}/app.sock", "cannot make the socket in {closed_folder} ("),
    ("fd://x", "'x' is not a file descriptor number. fd:// is for a socket handed over"),
    ("fd://{closed_fd}", "no file descriptor {closed_fd} is open in this process"),
    ("fd://{file_fd}", "file descriptor {file_fd} is not a socket"),
    ("fd://{udp_fd}", "file descriptor {udp_fd} is not a stream (TCP or Unix) socket"),
    ("[fe80::1]:{free}", "an IPv6 link-local address (fe80::/10) needs its interface"),
]


# Several binds at once: (binds, what the one line says).
SEVERAL_BINDS = [
    (["127.0.0.1:{free}", ""], "cannot listen on '': the bind is empty. Give host:port"),
    (["  "], "cannot listen on '  ': the bind is empty"),
    (
        ["127.0.0.1:{free}", "[::1]:{free}", "127.0.0.1:{free}"],
        "cannot listen on 127.0.0.1:{free}: it is given twice. Give each address once",
    ),
    (["127.0.0.1:{free}", "fd://x"], "cannot listen on fd://x: 'x' is not a file descriptor"),
    (["127.0.0.1:{free}", "[::1]:{free}"], None),
]


@pytest.mark.parametrize(("binds", "says"), SEVERAL_BINDS)
def test_several_binds_name_the_one_at_fault(
    bind_places: dict[str, str], binds: list[str], says: str | None
) -> None:
    problem = binds_problem([bind.format(**bind_places) for bind in binds])
    if says is None:
        assert problem is None
    else:
        assert problem is not None
        assert problem.startswith(says.format(**bind_places))


@pytest.mark.parametrize(("bind", "says"), BIND_FORMS)
def test_each_bind_form_names_each_failure_and_its_fix(
    bind_places: dict[str, str], bind: str, says: str | None
) -> None:
    bind = bind.format(**bind_places)
    problem = bind_problem(bind)
    if says is None:
        assert problem is None
    else:
        assert problem is not None
        assert problem.startswith(f"cannot listen on {bind}: {says.format(**bind_places)}")
        assert "\n" not in problem


@pytest.mark.system
@pytest.mark.parametrize(
    ("binds", "named", "says"),
    [
        (["127.0.0.1:99999"], "127.0.0.1:99999", "the port 99999 is out of range"),
        (["127.0.0.1:abc"], "127.0.0.1:abc", "the port 'abc' is not a number"),
        (["unix:/nonexistent/dir/s.sock"], "unix:/nonexistent/dir/s.sock", "the folder"),
        (["fd://99"], "fd://99", "no file descriptor 99 is open"),
        # Several: the one at fault alone is named.
        (["127.0.0.1:{port}", "[::1]:{port}", "fd://99"], "fd://99", "no file descriptor 99"),
    ],
)
def test_serve_names_the_bind_at_fault_and_exits_1(
    tmp_path: Path, binds: list[str], named: str, says: str
) -> None:
    port = free_port()
    options = [item for bind in binds for item in ("--bind", bind.format(port=port))]
    server = start([*SERVE, *options], server_env(tmp_path / "flaskr.sqlite"), port)
    assert server.process.wait(30) == 1
    output = server.output()
    lines = [line for line in output.splitlines() if "Start-up failed" in line]
    assert len(lines) == 1, output
    assert f"Start-up failed: cannot listen on {named}: {says}" in lines[0]
    assert "Traceback" not in output
