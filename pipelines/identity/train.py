"""Train the person-linking model offline, on a warehouse the hub has filled.

u (how often two different persons agree on a level) is learnt from random pairs between the
population register's persons and the other sources' mentions; m is declared in person_model.py
(the stored records passed their contracts, so they hold too few near-misses to learn it from).
The result is written to catalogs/identity/person_model.json and committed; evaluation against
the simulator's truth is in benchmarks/bench_reconcile.py.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipelines.identity.person_model import COLUMNS, MODEL, settings, splink_db
from pipelines.reports.files import write_atomically

ANCHORS = """SELECT doc_key AS unique_id, name_simplified, name_pinyin,
    birth_date, sex, division FROM ident.person_mentions
    WHERE resource = 'PS_POP_BASIC' AND key_state = 'valid'"""
CANDIDATES = """SELECT mention_id AS unique_id, name_simplified, name_pinyin,
    birth_date, sex, division FROM ident.person_mentions
    WHERE resource <> 'PS_POP_BASIC' AND key_state = 'valid' AND doc_type = '1'"""


def train(con, out: Path = MODEL, seed: int = 7) -> dict:
    from splink import Linker

    db_api = splink_db()
    tables = {}
    for name, sql in (("anchors", ANCHORS), ("candidates", CANDIDATES)):
        t = con.sql(f"SELECT {COLUMNS}, strftime(birth_date, '%Y%m%d') AS birth_text "
                    f"FROM ({sql})").to_arrow_table()
        tables[name] = db_api.register(t, dataset_display_name=name)
    s = settings()
    linker = Linker([tables["anchors"], tables["candidates"]], s)
    linker.training.estimate_u_using_random_sampling(max_pairs=5e6, seed=seed)
    # the model every reconcile run reads: written aside and renamed into place, so a crash
    # mid-write leaves the old model, never a cut-short one (same bytes as Splink's own writer)
    write_atomically(json.dumps(linker.misc.save_model_to_json(), indent=4), out)
    return {"anchors": tables["anchors"].as_duckdbpyrelation().count("*").fetchall()[0][0],
            "candidates": tables["candidates"].as_duckdbpyrelation().count("*").fetchall()[0][0],
            "model": str(out)}
