"""Writing report files so that a reader (or a web server) never sees a half-written page."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from pipelines.file_modes import FILE_MODE


def write_atomically(text: str, path: Path) -> Path:
    """A temporary file in the same directory, fsynced, then os.replace; the directory entry is
    made durable where the filesystem allows it."""
    path = Path(path)
    data = text.encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, FILE_MODE)  # mkstemp makes it 0600; the hub's group may read pages
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return path
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)
    return path
