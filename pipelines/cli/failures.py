"""Expected failures of the environment, said in one line: what failed, where, what to check.

A full disk, a home folder that is a file, a platform that does not answer, a warehouse held by
another writer: an operator needs the one line, not a traceback (`-v` shows that too).
"""

from __future__ import annotations

import errno

import duckdb

from pipelines.backflow.api_client import ApiError
from pipelines.backflow.runs import DropRootMissing
from pipelines.catalog.model import CatalogError
from pipelines.serving.audit_key import AuditKeyError
from pipelines.warehouse.writer import WarehouseLocked
from pipelines.workbench.pseudonym import PseudonymKeyError

EXPECTED = (OSError, duckdb.Error, ApiError, WarehouseLocked, DropRootMissing, CatalogError,
            AuditKeyError, PseudonymKeyError)

_OS_HINTS = {
    errno.ENOSPC: "the disk is full: free space and run again (nothing half-written was kept)",
    errno.EDQUOT: "the disk quota is used up: free space and run again",
    errno.ENOTDIR: "a folder in this path is a file: check HUILIU_HOME / --home",
    errno.EEXIST: "a file stands where a folder is needed: check HUILIU_HOME / --home",
    errno.EACCES: "permission denied: check the owner and mode of this path",
    errno.EPERM: "operation not permitted: check the owner and mode of this path",
    errno.EROFS: "the file system is read-only",
    errno.ENOENT: "no such file or folder",
}


def one_line(e: BaseException) -> str:
    """The failure as one line an operator can act on."""
    if isinstance(e, OSError) and e.errno in _OS_HINTS:
        where = e.filename or ""
        return f"{where}: {_OS_HINTS[e.errno]}" if where else _OS_HINTS[e.errno]
    text = " ".join(str(e).split())
    if isinstance(e, duckdb.Error) and "No space left on device" in text:
        return f"{_OS_HINTS[errno.ENOSPC]} ({text[:160]})"
    if isinstance(e, OSError):
        return f"{e.filename or ''}: {e.strerror or text}".lstrip(": ")
    return text
