"""The working tables of one batch's load, named once here and dropped together.

They live on the loading connection only (temporary), for the length of one `load_batch`: each
step of the load reads the tables the steps before it made.
"""

from __future__ import annotations

import contextlib

import duckdb

LANDED = "load_landed"
"""The landed rows as strings, plus _file, _line, _ord: Arrow scanned in place (registered). The
expressions of pipelines/catalog/sql_gen.py name it `s`: every query aliases it so."""
PROBLEMS = "load_problems"
"""One row per problem of a row that cannot be typed (`prob`), with its raw line and record key."""
TYPED = "load_typed"
"""The rows without problems, typed, with _op, _gxsj, _row_hash; rows failing an error rule of the
contract are deleted from it."""
CONTRACT_FAILED = "load_contract_failed"
"""_ord of the rows quarantined by the contract."""
SUPERSEDED = "load_superseded"
"""_ord of the rows that repeat a change of this batch or a version already held."""
NEW = "load_new"
"""View: the typed rows not superseded, the versions this batch adds."""
MULTI_VERSION_KEYS = "load_multi_version_keys"
"""Keys with several new versions in this batch, or versions in the warehouse before it."""
TOUCHED_KEYS = "load_touched_keys"
"""Keys whose validity intervals are re-derived: MULTI_VERSION_KEYS and the snapshot's deletes."""

_TABLES = (PROBLEMS, TYPED, CONTRACT_FAILED, SUPERSEDED, MULTI_VERSION_KEYS, TOUCHED_KEYS)


def drop_batch_tables(con) -> None:
    """Drop every working table, after a load that committed and one that rolled back alike (the
    registration keeps the batch's Arrow rows in memory until then).

    A connection a failure left unusable (a full disk) cannot drop them: that failure, already
    raised, is the one to report, and closing the connection frees them.
    """
    with contextlib.suppress(duckdb.Error):
        con.execute(f"DROP VIEW IF EXISTS {NEW}")
        for table in _TABLES:
            con.execute(f"DROP TABLE IF EXISTS {table}")
        con.unregister(LANDED)
