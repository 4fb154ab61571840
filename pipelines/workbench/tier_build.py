"""Write one tier file from a plan: the published snapshot attached read-only, the tier's tables
materialised (views for current records), every column commented, and a data dictionary.

Only the tier's own data is written: the snapshot is detached before the file is closed, and the
pseudonym key lives in a TEMP macro of the building connection, never in the file."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import duckdb

from pipelines.warehouse.publish import OWNER_ONLY_FILE
from pipelines.workbench.pseudonym import macro_sql
from pipelines.workbench.tier_plan import SCHEMAS, TierPlan

DICTIONARY = "meta.data_dictionary"
DICTIONARY_COMMENT = ("数据字典 data dictionary: every column of this tier with its names, sharing "
                      "type (U/C) and the mask applied (empty: shown as stored)")


def _text(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _surname_macro(compound: tuple[str, ...]) -> str:
    listed = ", ".join(_text(c) for c in compound) or "''"
    return ("CREATE OR REPLACE TEMP MACRO surname_mask(x) AS CASE WHEN x IS NULL OR x = '' THEN x "
            f"WHEN left(x, 2) IN ({listed}) THEN left(x, 2) || '*' ELSE left(x, 1) || '*' END")


def build_tier(snapshot: Path, plan: TierPlan, target: Path, key: bytes,
               compound_surnames: tuple[str, ...]) -> Path:
    """The tier file at `target` (written beside it, then renamed into place)."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    con = duckdb.connect(str(tmp), config={"enable_external_access": True})
    try:
        con.execute(f"ATTACH {_text(str(snapshot))} AS snap (READ_ONLY)")
        con.execute(macro_sql(key))
        con.execute(_surname_macro(compound_surnames))
        for schema in SCHEMAS:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        rows = []
        for t in plan.tables:
            what = "VIEW" if t.view else "TABLE"
            con.execute(f'CREATE {what} {t.schema}."{t.name}" AS {t.query}')
            con.execute(f'COMMENT ON {what} {t.schema}."{t.name}" IS {_text(t.comment)}')
            for c in t.columns:
                con.execute(f'COMMENT ON COLUMN {t.schema}."{t.name}"."{c.name}" IS '
                            f'{_text(c.comment)}')
                rows.append((t.schema, t.name, c.name, c.name_zh, c.name_en, c.sharing, c.mask,
                             c.comment))
        con.execute("DETACH snap")
        con.execute(f"""CREATE TABLE {DICTIONARY} (schema_name VARCHAR, table_name VARCHAR,
            column_name VARCHAR, name_zh VARCHAR, name_en VARCHAR, sharing VARCHAR,
            mask VARCHAR, comment VARCHAR, data_type VARCHAR)""")
        con.executemany(f"INSERT INTO {DICTIONARY} VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)", rows)
        con.execute(f"""UPDATE {DICTIONARY} d SET data_type = c.data_type FROM duckdb_columns() c
            WHERE c.schema_name = d.schema_name AND c.table_name = d.table_name
              AND c.column_name = d.column_name""")
        con.execute(f"COMMENT ON TABLE {DICTIONARY} IS {_text(DICTIONARY_COMMENT)}")
        con.execute("CHECKPOINT")
    except BaseException:
        con.close()
        tmp.unlink(missing_ok=True)
        tmp.with_name(tmp.name + ".wal").unlink(missing_ok=True)
        raise
    con.close()
    os.chmod(tmp, OWNER_ONLY_FILE)  # an identified tier holds IDs in clear, like the snapshot
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.rename(tmp, target)
    return target
