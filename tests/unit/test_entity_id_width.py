"""Entity ids keep counting past a billion: the ten-digit serial is written whole, never cut to
nine digits (which would hand out an id that exists already)."""

import datetime as dt

import duckdb

from pipelines.identity import registry
from pipelines.identity.reconcile import ensure_identity_schema


def test_new_ids_after_the_nine_digit_range_are_whole_and_new():
    con = duckdb.connect()
    ensure_identity_schema(con)
    con.execute("INSERT INTO ident.entities VALUES ('HLP999999999', 'person', 'active', NULL, "
                "'R0', 'R0')")
    con.execute("INSERT INTO ident.registry (kind, unit, entity_id, root) VALUES "
                "('person', '1:old', 'HLP999999999', '1:old')")
    con.execute("CREATE TEMP TABLE _units AS SELECT * FROM (VALUES ('1:a', '1:a', 'key', 1.0), "
                "('1:b', '1:b', 'key', 1.0)) v(unit, root, method, p)")
    registry.assign(con, "person", "R1", dt.datetime(2026, 12, 4))
    new = sorted(e for (e,) in con.execute("SELECT DISTINCT entity_id FROM _assigned").fetchall())
    assert new == ["HLP1000000000", "HLP1000000001"]
