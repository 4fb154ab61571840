"""Crash injection for child processes: put this folder on PYTHONPATH and set
HUILIU_TEST_CRASH_SQL to a regular expression. The first statement on the warehouse file
(huiliu.duckdb) that matches it ends the process with os._exit(137), as `kill -9` would: nothing
after it runs, no rollback, no cleanup. The product code has no hook of its own for this."""

import os
import re

_PATTERN = os.environ.get("HUILIU_TEST_CRASH_SQL")

if _PATTERN:
    import duckdb

    _rx = re.compile(_PATTERN)
    _connect = duckdb.connect

    class _CrashingConnection:
        def __init__(self, con):
            self._con = con

        def execute(self, sql, *args, **kwargs):
            if _rx.search(sql):
                os._exit(137)
            return self._con.execute(sql, *args, **kwargs)

        def __getattr__(self, name):
            return getattr(self._con, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self._con.__exit__(*exc)

    def connect(database=":memory:", *args, **kwargs):
        con = _connect(database, *args, **kwargs)
        return _CrashingConnection(con) if str(database).endswith("huiliu.duckdb") else con

    duckdb.connect = connect
