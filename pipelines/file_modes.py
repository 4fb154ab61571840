"""What the hub writes is readable by the hub's account and its group only.

Nearly every file the hub writes holds personal data or traces of it: the working and published
warehouses, landing Parquet, the serving store, the audit log, consumer credentials, reports that
name IDs. Each of the hub's processes restricts its file-creation mask when it starts (the command
line, and the Dagster code location for processes the Dagster daemon or UI start), so files are
created 0640 and folders 0750, and processes inherit that. The group is for reader processes run
under another account (README, Security); "other" gets nothing.
"""

from __future__ import annotations

import os

UMASK = 0o027
FILE_MODE = 0o640  # for files created with an explicit mode (os.open, os.chmod after mkstemp)


def restrict_new_files() -> None:
    """Files and folders this process (and its children) creates: no access for other accounts."""
    os.umask(UMASK)
