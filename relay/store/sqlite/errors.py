"""How `sqlite3` errors become `StoreError`s that name the file and say what to do.

Invariant: every `sqlite3.Error` a SQLite store meets leaves it as the `StoreError` of
`store_error`; the advice follows SQLite's extended error name (`SQLITE_BUSY`, ...).
A full disk or a read-only file is a `StoreUnwritable`: the store answers, but no write lands.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from relay.errors import StoreError, StoreUnwritable


def store_error(path: Path, action: str, exc: sqlite3.Error, busy_timeout_s: float) -> StoreError:
    """The `StoreError` for `exc`, naming the file and saying what to do about it."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    detail = str(exc)
    kind = (
        StoreUnwritable
        if name == "SQLITE_FULL" or name.startswith("SQLITE_READONLY")
        else StoreError
    )
    if name == "SQLITE_FULL":
        advice = "the disk is full; free space on it or lower store.retention"
    elif name.startswith("SQLITE_READONLY"):
        advice = (
            "the file is read-only; give this user write access to it and to its "
            "directory (SQLite writes -wal and -shm files beside it)"
        )
    elif name.startswith(("SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_AUTH")):
        advice = (
            "cannot open the file; check that the path is a file (not a directory) and "
            "that this user may read and write it and its directory"
        )
    elif name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        advice = (
            f"another process held the database lock for over {busy_timeout_s:g}s; run "
            "one zaia-relay per SQLite file (several replicas need PostgreSQL)"
        )
    elif name.startswith(("SQLITE_NOTADB", "SQLITE_CORRUPT")):
        advice = (
            "the file is not a zaia-relay database or is damaged; point store.url at "
            "another file, or restore a backup"
        )
    elif name.startswith("SQLITE_IOERR"):
        advice = (
            "the disk failed a read or write; check the disk and the filesystem "
            "(network filesystems cannot host SQLite's WAL)"
        )
    else:
        advice = "check the file and its disk, or point store.url elsewhere"
    return kind(f"sqlite store {path}: cannot {action}: {detail}; {advice}")
