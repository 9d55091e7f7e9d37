"""Start hypercorn servers by forking one process that imported hypercorn and the app once.

A test that starts the same server many times (the kill -9 test: twenty rounds a backend)
paid the interpreter's start and the imports every time, 0.3 s of CPU a round. This process
does them once (`python -m tests.fork_server`, with the app's environment), then for each
port it reads on stdin forks a child that runs hypercorn's own command line,
``hypercorn --bind 127.0.0.1:PORT -w 0 asgi:app``: a real server process, which SIGKILL ends
as it ends any other, and which opens its database as any other does when it starts serving.
The child's output goes to a file in the folder it is given; it answers with the child's id
and that file. The one difference from separate starts: the servers share the fork server's
hash seed, so sets and dicts of strings iterate in the same order in every round.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextlib import suppress
from pathlib import Path

from tests.servers import ROOT
from tests.servers import refuse_unless_system
from tests.servers import wait_until_answering


class ForkedServer:
    """A server forked by the fork server: its process id, log file and base URL."""

    def __init__(self, pid: int, log: Path, url: str) -> None:
        self.pid = pid
        self.log = log
        self.url = url
        self.killed = False

    def alive(self) -> bool:
        """Tell whether the server process still runs (the fork server reaps it once ended)."""
        return Path(f"/proc/{self.pid}").exists()

    def kill(self) -> None:
        """SIGKILL the server, as a crash or OOM kill would, and wait until it is gone."""
        if self.killed:  # its id may be another process's by now
            return
        self.killed = True
        with suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        gone_by = time.monotonic() + 10
        while self.alive():
            assert time.monotonic() < gone_by, f"server {self.pid} outlived SIGKILL by 10 s"
            time.sleep(0.005)


class ForkServer:
    """The process that forks servers; it and every server it forked end with the block."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process

    @contextmanager
    def serving(self, port: int, deadline: float = 20) -> Iterator[ForkedServer]:
        """Fork a server on ``port`` and wait until it answers; SIGKILL it after the block."""
        assert self.process.stdin is not None and self.process.stdout is not None
        try:
            self.process.stdin.write(f"{port}\n")
            self.process.stdin.flush()
            answer = self.process.stdout.readline()
        except BrokenPipeError:
            answer = ""
        if not answer:  # it failed to import the app: its traceback is in the test's output
            raise RuntimeError(f"the fork server ended with status {self.process.wait()}")
        pid, log = answer.split(maxsplit=1)
        server = ForkedServer(int(pid), Path(log.strip()), f"http://127.0.0.1:{port}")
        try:
            wait_until_answering(server.url, server.log.read_text, server.alive, deadline)
            yield server
        except BaseException:
            # A failed test shows what its server logged (pytest prints captured output).
            print(f"--- the server's log ---\n{server.log.read_text(errors='replace')}")
            raise
        finally:
            server.kill()


@contextmanager
def fork_server(env: dict[str, str]) -> Iterator[ForkServer]:
    """Start the fork server with the app's environment; end it and its servers after."""
    refuse_unless_system("the fork server started")
    with tempfile.TemporaryDirectory(prefix="flaskr-forks-") as logs:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.fork_server", logs],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group, with every server it forks
        )
        try:
            yield ForkServer(process)
        finally:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            for stream in (process.stdin, process.stdout):
                if stream is not None:
                    stream.close()


def serve_forks(logs: Path) -> None:
    """Import the app, then fork a hypercorn server for each port read from stdin."""
    import hypercorn.__main__

    import asgi  # noqa: F401 - the app, made from the environment, before any fork

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # ended servers are reaped by the kernel
    for line in sys.stdin:
        port = int(line)
        log = logs / f"{port}.log"
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # hypercorn's own children, if any
            output = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(output, 1)
            os.dup2(output, 2)
            arguments = ["--bind", f"127.0.0.1:{port}", "-w", "0", "asgi:app"]
            os._exit(hypercorn.__main__.main(arguments))
        print(pid, log, flush=True)
    # stdin closed: the test run is gone, killed maybe. No server of it outlives it.
    os.killpg(0, signal.SIGKILL)


if __name__ == "__main__":
    serve_forks(Path(sys.argv[1]))
