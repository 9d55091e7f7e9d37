"""Files that hold secrets or data: created owner-only and exclusively, existing ones checked.

Every file the app writes goes through here: the key the serve command writes into config.py,
the SQLite database (SQLite gives its -wal, -shm and -journal files the database's mode), and
a backup. A new file is created exclusively, without following a link, mode 0600 from its first
byte, and written through the descriptor it was created with; an existing one that another user
owns or may read, or a link, is refused with one line naming it and the fix.
"""

from __future__ import annotations

import os
import pwd
import stat
from collections.abc import Iterator
from contextlib import contextmanager

OWNER_ONLY = 0o600


class UnsafeFile(OSError):
    """A file that would hold secrets or data where others could read, own or swap it."""


def user_name(uid: int) -> str:
    """Name a user by id, or give the id of one the system does not know."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def not_yours(path: str, owner: str, uid: int) -> str:
    """Say whose the file is and how to run as its owner; chown only where it is no harm."""
    me = user_name(uid)
    refusal = f"{path} belongs to {owner}, not to {me}, who runs this: run it as {owner}"
    if uid == 0:
        # Root giving a service's file to itself would lock the service out of it.
        return f"{refusal} (runuser -u {owner} -- followed by the command)"
    return f"{refusal}, or (as root) chown {me} {path} if it should be {me}'s"


def check(path: str, status: os.stat_result) -> None:
    """Raise UnsafeFile unless the file is a regular file of this user, closed to others."""
    if stat.S_ISLNK(status.st_mode):
        raise UnsafeFile(
            f"{path} is a symbolic link, which is not followed: use the file's own path"
        )
    if not stat.S_ISREG(status.st_mode):
        raise UnsafeFile(f"{path} is not a regular file")
    if status.st_uid != os.geteuid():
        raise UnsafeFile(not_yours(path, user_name(status.st_uid), os.geteuid()))
    mode = stat.S_IMODE(status.st_mode)
    if mode & 0o077:
        raise UnsafeFile(f"{path} is open to other users (mode {mode:04o}): chmod 600 {path}")


def check_existing(path: str) -> None:
    """Refuse the file at path if it exists and check() refuses it; a missing one is fine."""
    try:
        status = os.lstat(path)
    except FileNotFoundError:
        return
    check(path, status)


def create(path: str) -> int:
    """Create path for writing, exclusively and owner-only; return its descriptor."""
    # O_EXCL: never an existing file, nor a link planted at the name (even a dangling one).
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    descriptor = os.open(path, flags, OWNER_ONLY)
    # Exactly 0600 whatever the umask (0o277 would leave the owner unable to write it).
    os.fchmod(descriptor, OWNER_ONLY)
    return descriptor


def open_existing(path: str, flags: int) -> int:
    """Open an existing file without following a link; refuse it unless check() passes."""
    try:
        descriptor = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        check_existing(path)  # a link says so; anything else keeps its own error
        raise
    try:
        check(path, os.fstat(descriptor))
    except UnsafeFile:
        os.close(descriptor)
        raise
    return descriptor


def write_all(descriptor: int, data: bytes) -> None:
    """Write every byte through the descriptor (os.write may take fewer than it is given)."""
    view = memoryview(data)
    while view:
        view = view[os.write(descriptor, view) :]


def is_held(descriptor: int, path: str) -> bool:
    """Tell whether path still names the file the descriptor holds, and nothing else does."""
    held = os.fstat(descriptor)
    try:
        named = os.lstat(path)
    except FileNotFoundError:
        return False
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino) and held.st_nlink == 1


def check_written(descriptor: int, path: str) -> None:
    """Flush the file to disk; raise UnsafeFile unless path names it, still this user's alone."""
    os.fsync(descriptor)  # a full disk or an I/O error shows here at the latest
    check(path, os.fstat(descriptor))
    if not is_held(descriptor, path):
        raise UnsafeFile(
            f"{path} was moved, replaced or linked while it was written: check who else can"
            f" write to {os.path.dirname(os.path.abspath(path))}, and write somewhere only you can"
        )


@contextmanager
def created(path: str) -> Iterator[int]:
    """Create path exclusively, owner-only, for the block to write; check the result after it.

    If the block or the check fails, the file is removed, if path still names it.
    """
    descriptor = create(path)
    try:
        yield descriptor
        check_written(descriptor, path)
    except BaseException:
        if is_held(descriptor, path):
            os.unlink(path)
        raise
    finally:
        os.close(descriptor)
