"""Say why the server cannot listen on an address, naming it, the cause and the fix.

``bind_problem`` checks one of hypercorn's bind forms before anything binds (host:port,
[v6]:port, unix:path, fd://n): hypercorn itself read ``127.0.0.1:abc`` as the host
``127.0.0.1:abc`` and said the host name was unknown, took ``unix:`` in a missing folder or
``fd://99`` to a bare errno, and replaced a Unix socket another server was still listening on.
``listen_failure`` words a failure that still happens when hypercorn binds (a race).
"""

from __future__ import annotations

import errno
import os
import socket
import stat
from collections.abc import Sequence

EXAMPLE = "127.0.0.1:8000"
# sockaddr_un's sun_path holds 108 bytes on Linux, the last a NUL.
UNIX_PATH_MAX = 107


def how(address: str) -> str:
    """Say how to serve on ``address``: make run BIND=, or --bind (serve command, hypercorn)."""
    return f"make run BIND={address}, or --bind {address} (python -m flaskr_async serve, hypercorn)"


def another_port(binds: Sequence[str]) -> str:
    """Suggest the first address with the next port up (or 127.0.0.1:8001)."""
    host, _, port = binds[0].rpartition(":") if binds else ("", "", "")
    return f"{host}:{int(port) + 1}" if host and port.isdigit() else "127.0.0.1:8001"


def host_and_port(bind: str) -> tuple[str, str]:
    """Split host:port or [v6]:port as written; raise ValueError with the cause and the fix."""
    if bind.startswith("["):
        address, bracket, port = bind[1:].partition("]:")
        if not bracket or "]" in address:
            raise ValueError(
                f"an IPv6 address is written [address]:port. Give one: {how('[::1]:8000')}"
            )
        return address, port
    host, colon, port = bind.rpartition(":")
    if not colon:
        return bind, "8000"  # hypercorn's port for a bare host
    if ":" in host:
        raise ValueError(f"an IPv6 address needs brackets, [address]:port: {how('[::1]:8000')}")
    return host, port


def tcp_problem(bind: str) -> str | None:
    """Check host:port's text, then bind to it once and let go, as hypercorn will."""
    try:
        host, port = host_and_port(bind)
    except ValueError as error:
        return str(error)
    if not port.isdigit() or not port.isascii():
        return f"the port {port!r} is not a number. Give one from 1024 to 65535: {how(EXAMPLE)}"
    if int(port) > 65535:
        return f"the port {port} is out of range (0-65535). Give one from 1024 up: {how(EXAMPLE)}"
    try:
        # The family as hypercorn picks it; bind() resolves a name (gaierror if unknown).
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as hypercorn binds
            sock.bind((host, int(port)))
    except OSError as error:
        return cause_and_fix(error, [bind]) or error.strerror or str(error)
    return None


def unix_problem(path: str) -> str | None:
    """Check a Unix socket's path: its length, its folder, what is there; then bind once."""
    folder = os.path.dirname(os.path.abspath(path))
    fix = "or choose another path: make run BIND=unix:PATH, or --bind unix:PATH"
    if not path:
        return "no path after unix:. Give one: make run BIND=unix:PATH, or --bind unix:PATH"
    if len(os.fsencode(path)) > UNIX_PATH_MAX:
        return (
            f"the path is longer than a Unix socket's {UNIX_PATH_MAX} bytes. Use a shorter one,"
            f" {fix}"
        )
    if not os.path.isdir(folder):
        return f"the folder {folder} does not exist. Create it (mkdir -p {folder}) {fix}"
    stale = os.path.lexists(path)
    if stale:
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            return f"{path} exists and is not a socket. Move it away {fix}"
        with socket.socket(socket.AF_UNIX) as probe:
            if probe.connect_ex(path) == 0:
                # hypercorn would delete it and take the path from the server still using it.
                return f"another server is listening on {path}. Stop it {fix}"
    try:
        if stale:
            os.remove(path)  # left by a server that stopped: hypercorn replaces it too
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind(path)
        os.remove(path)
    except OSError as error:
        return (
            f"cannot make the socket in {folder} ({error.strerror}). Let this user write"
            f" there (a stale socket is replaced) {fix}"
        )
    return None


def fd_problem(number: str) -> str | None:
    """Check that fd://n names an open stream socket, as systemd's socket activation passes."""
    fix = (
        "fd:// is for a socket handed over by systemd or a supervisor; or bind an address:"
        f" {how(EXAMPLE)}"
    )
    if not number.isdigit() or not number.isascii():
        return f"{number!r} is not a file descriptor number. {fix}"
    try:
        mode = os.fstat(int(number)).st_mode
    except OSError:
        return f"no file descriptor {number} is open in this process. {fix}"
    if not stat.S_ISSOCK(mode):
        return f"file descriptor {number} is not a socket. {fix}"
    sock = socket.socket(fileno=int(number))
    try:
        kind = sock.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE)
    finally:
        sock.detach()  # the descriptor stays open, for hypercorn
    if kind != socket.SOCK_STREAM:
        return f"file descriptor {number} is not a stream (TCP or Unix) socket. {fix}"
    return None


def bind_problem(bind: str) -> str | None:
    """Say why the server cannot listen on ``bind``, naming it, the cause and the fix; or None."""
    if bind.startswith("unix:"):
        problem = unix_problem(bind[5:])
    elif bind.startswith("fd://"):
        problem = fd_problem(bind[5:])
    else:
        problem = tcp_problem(bind)
    return None if problem is None else f"cannot listen on {bind}: {problem}"


def binds_problem(binds: Sequence[str]) -> str | None:
    """Return the first bind's problem, or None when every bind can be listened on."""
    for bind in binds:
        if not bind.strip():
            return f"cannot listen on {bind!r}: the bind is empty. Give host:port: {how(EXAMPLE)}"
    twice = [bind for number, bind in enumerate(binds) if bind in binds[:number]]
    if twice:
        # Otherwise the second would be refused as in use by "another server": this one.
        return f"cannot listen on {twice[0]}: it is given twice. Give each address once"
    return next(filter(None, map(bind_problem, binds)), None)


def cause_and_fix(error: OSError, binds: Sequence[str]) -> str | None:
    """Say what a failure to listen on ``binds`` means and how to serve; None if unknown."""
    unix = any(bind.startswith("unix:") for bind in binds)
    if isinstance(error, socket.gaierror):
        return (
            f"the host name is unknown ({error.strerror}). Bind to an address of this"
            f" machine: {how(EXAMPLE)}"
        )
    if error.errno == errno.EADDRINUSE:
        fix = "another path" if unix else f"another port: {how(another_port(binds))}"
        return (
            "the address is already in use (another server, or an earlier one still"
            f" running?). Stop it, or serve on {fix}"
        )
    if error.errno in (errno.EACCES, errno.EPERM) and unix:
        return (
            "permission denied on the socket's path or its folder. Allow this user, or choose"
            " another path"
        )
    if error.errno == errno.EACCES:
        return (
            "permission denied; a port below 1024 needs root (or"
            " CAP_NET_BIND_SERVICE). Serve on a port from 1024 up, behind nginx"
            f" (docs/deployment.md): {how(EXAMPLE)}"
        )
    if error.errno == errno.EADDRNOTAVAIL:
        return (
            "that address is not one of this machine's. Bind to one of its addresses:"
            f" {how(EXAMPLE)}"
        )
    if error.errno == errno.ENOENT and unix:
        return "the socket's folder does not exist. Create it, or choose another path"
    if error.errno == errno.EINVAL and any(is_link_local(bind) for bind in binds):
        return (
            "an IPv6 link-local address (fe80::/10) needs its interface, as in"
            f" [fe80::1%eth0]:8000; or bind another address: {how(EXAMPLE)}"
        )
    if error.errno == errno.EBADF:
        return f"a file descriptor given with fd:// is not open. Bind an address: {how(EXAMPLE)}"
    return None


def is_link_local(bind: str) -> bool:
    """Tell whether a bind is an IPv6 link-local address without its interface (%name)."""
    return bind.lower().startswith("[fe") and "%" not in bind and bind[3:4].lower() in "89ab"


def listen_failure(error: Exception, binds: Sequence[str]) -> str | None:
    """Explain a failure to listen on ``binds`` in one line; None if it is another failure."""
    if not isinstance(error, OSError):
        return None
    # hypercorn's OSError names neither the address nor the port it tried.
    explained = cause_and_fix(error, binds)
    return None if explained is None else f"cannot listen on {', '.join(binds)}: {explained}"
