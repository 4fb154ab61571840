"""Conflicts between sources about one entity, kept with both sides' provenance.

The SQL (assets/sql/identity/conflicts.sql) finds what is contradictory today; this module folds
that into gold.conflicts: new ones open (and are raised as objections to the provider that must
act), ones still found stay open, ones no longer found are resolved. A conflict's id is stable:
the digest of its kind, entity and both records.
"""

from __future__ import annotations

import datetime as dt
import functools

import yaml

from pipelines import paths
from pipelines.governance import objections
from pipelines.catalog.model import Catalog

SQL = paths.SQL / "identity" / "conflicts.sql"
CONFIG = paths.QUALITY / "reconcile.yaml"
# the field of the responsible provider's record an objection points at, and the golden fields
# a conflict puts in doubt
OBJECTION_FIELD = {"death_vs_active": "RYZTDM", "marital_mismatch": "HYZKDM",
                   "hukou_two_regions": "RYZTDM", "customs_of_deregistered": "BAZTDM",
                   "subsistence_after_death": "BZZTDM"}
GOLDEN_FIELDS = {"death_vs_active": ["status", "death_date"],
                 "marital_mismatch": ["marital_status"],
                 "hukou_two_regions": ["hukou_division", "status"],
                 "customs_of_deregistered": ["customs_status"],
                 "subsistence_after_death": ["subsistence_status"]}


@functools.cache
def config() -> dict:
    return yaml.safe_load(CONFIG.read_text(encoding="utf-8"))


def detect(con, catalog: Catalog, today: dt.date) -> dict:
    grace = config()["grace_days"]
    params = {"today": today, **{f"grace_{k}": int(v) for k, v in grace.items()}}
    con.execute(f"CREATE OR REPLACE TEMP TABLE _found AS SELECT md5(concat_ws('|', kind, "
                f"entity_id, a_record_key, b_record_key)) AS conflict_id, * FROM "
                f"({SQL.read_text(encoding='utf-8')})", params)
    new = con.execute("""SELECT conflict_id, kind, a_resource, a_record_key, detail_zh, detail_en,
            responsible_provider FROM _found
        WHERE conflict_id NOT IN (SELECT conflict_id FROM gold.conflicts WHERE status = 'open')
        ORDER BY conflict_id""").fetchall()
    con.execute("""INSERT INTO gold.conflicts
        SELECT conflict_id, kind, entity_kind, entity_id, region, a_value, a_provider, a_resource,
               a_record_key, a_batch_id, a_as_of, b_value, b_provider, b_resource, b_record_key,
               b_batch_id, b_as_of, responsible_provider, NULL, detail_zh, detail_en,
               ?, ?, NULL, 'open'
        FROM _found WHERE conflict_id NOT IN (SELECT conflict_id FROM gold.conflicts)""",
                [today, today])
    con.execute("""UPDATE gold.conflicts SET last_detected = ?, status = 'open', resolved_on = NULL
        WHERE conflict_id IN (SELECT conflict_id FROM _found)""", [today])
    resolved = con.execute("""UPDATE gold.conflicts SET status = 'resolved', resolved_on = ?
        WHERE status = 'open' AND conflict_id NOT IN (SELECT conflict_id FROM _found)""",
                           [today]).fetchall()[0][0]
    raised = 0
    if config().get("raise_objections"):
        for cid, kind, resource, key, zh, en, provider in new:
            if not provider:
                continue
            oid = objections.raise_manual(con, catalog, resource, key, OBJECTION_FIELD.get(kind),
                                          f"{zh} / {en} (conflict {cid[:12]})", "reconcile",
                                          today=today)
            con.execute("UPDATE gold.conflicts SET objection_id = ? WHERE conflict_id = ?",
                        [oid, cid])
            raised += 1
    _flag_golden(con)
    counts = dict(con.execute("SELECT kind, count(*) FROM gold.conflicts WHERE status = 'open' "
                              "GROUP BY ALL").fetchall())
    return {"open": sum(counts.values()), "by_kind": counts, "new": len(new),
            "resolved": resolved, "objections_raised": raised}


def _flag_golden(con) -> None:
    """in_conflict on the current golden values an open conflict puts in doubt."""
    pairs = [(k, f) for k, fields in GOLDEN_FIELDS.items() for f in fields]
    con.execute("CREATE OR REPLACE TEMP TABLE _kf (kind VARCHAR, field VARCHAR)")
    con.executemany("INSERT INTO _kf VALUES (?, ?)", pairs)
    con.execute("UPDATE gold.field_values SET in_conflict = false WHERE valid_to IS NULL "
                "AND in_conflict")
    con.execute("""UPDATE gold.field_values v SET in_conflict = true
        FROM (SELECT DISTINCT c.entity_kind, c.entity_id, kf.field FROM gold.conflicts c
              JOIN _kf kf USING (kind) WHERE c.status = 'open') x
        WHERE v.valid_to IS NULL AND v.kind = x.entity_kind AND v.entity_id = x.entity_id
          AND v.field = x.field""")
