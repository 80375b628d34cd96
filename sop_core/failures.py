"""Why a write did not happen, in one line a person can act on (``sopgap load``).

The database's and the operating system's errors carry SQL, parameters and paths meant for
developers; these sentences name the cause only: the database not answering, the disk full,
permission denied.
"""

from __future__ import annotations

import errno

from sqlalchemy.exc import DBAPIError

DISK_FULL = ("no space left", "disk is full", "database or disk is full", "diskfull",
             "could not extend file", "could not write")
NO_PERMISSION = ("permission denied", "readonly database", "read-only", "unable to open "
                 "database file", "insufficient privilege", "must be owner")


def failure_cause(error: BaseException) -> str | None:
    """The cause of ``error`` in a few words, or None when it is none of the known ones."""
    if isinstance(error, DBAPIError):
        text = str(error.orig or error).lower()
        if any(marker in text for marker in DISK_FULL):
            return "the database's disk is full"
        if any(marker in text for marker in NO_PERMISSION):
            return "permission denied: the database cannot be written"
        return (f"the database is not answering ({type(error.orig or error).__name__})"
                if error.connection_invalidated or "connect" in text or
                "server closed" in text or "timeout" in text else
                f"the database refused the write ({type(error.orig or error).__name__})")
    if isinstance(error, OSError):
        where = f" ({error.filename})" if error.filename else ""
        if error.errno == errno.ENOSPC:
            return f"the disk is full{where}"
        if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return f"permission denied{where}"
        return f"{error.strerror or type(error).__name__}{where}"
    return None
