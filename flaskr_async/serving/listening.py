"""Say why the server could not listen on its address, and how to serve on another."""

from __future__ import annotations

import errno
import socket
from collections.abc import Sequence


def how(address: str) -> str:
    """Say how to serve on ``address``: make run BIND=, or --bind (serve command, hypercorn)."""
    return f"make run BIND={address}, or --bind {address} (python -m flaskr_async serve, hypercorn)"


def another_port(binds: Sequence[str]) -> str:
    """Suggest the first address with the next port up (or 127.0.0.1:8001)."""
    host, _, port = binds[0].rpartition(":") if binds else ("", "", "")
    return f"{host}:{int(port) + 1}" if host and port.isdigit() else "127.0.0.1:8001"


def listen_failure(error: Exception, binds: Sequence[str]) -> str | None:
    """Explain a failure to listen on ``binds`` in one line; None if it is another failure."""
    if not isinstance(error, OSError):
        return None
    # hypercorn's OSError names neither the address nor the port it tried.
    where = f"cannot listen on {', '.join(binds)}"
    if isinstance(error, socket.gaierror):
        return (
            f"{where}: the host name is unknown ({error.strerror}). Bind to an address of this"
            f" machine: {how('127.0.0.1:8000')}"
        )
    if error.errno == errno.EADDRINUSE:
        return (
            f"{where}: the address is already in use (another server, or an earlier one still"
            f" running?). Stop it, or serve on another port: {how(another_port(binds))}"
        )
    if error.errno == errno.EACCES:
        return (
            f"{where}: permission denied; a port below 1024 needs root (or"
            f" CAP_NET_BIND_SERVICE). Serve on a port from 1024 up, behind nginx"
            f" (docs/deployment.md): {how('127.0.0.1:8000')}"
        )
    if error.errno == errno.EADDRNOTAVAIL:
        return (
            f"{where}: that address is not one of this machine's. Bind to one of its"
            f" addresses: {how('127.0.0.1:8000')}"
        )
    return None
