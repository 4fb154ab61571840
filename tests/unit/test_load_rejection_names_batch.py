"""A batch the warehouse refuses while loading it (here: over a contract threshold) names itself
in the rejection, so an API pull records it under the batch's own id beside the contract results
that explain it (it was recorded under "?" before)."""

import datetime as dt

import duckdb
import pyarrow as pa
import pytest

from pipelines.backflow.landing import land
from pipelines.backflow.load import load_batch
from pipelines.backflow.parsed import BatchRejected, ParsedBatch, output_columns
from pipelines.catalog import catalog
from pipelines.catalog.identifiers import make_citizen_id
from pipelines.warehouse.writer import ensure_schema

pytestmark = pytest.mark.unit


def _rows(n: int, bad_every: int) -> list[list[str | None]]:
    rows = []
    for i in range(n):
        pid = make_citizen_id("500103", dt.date(1970, 1, 1) + dt.timedelta(days=i), 2 * (i % 400))
        if i % bad_every == 0:
            pid = pid[:17] + ("1" if pid[17] == "0" else "0")  # wrong check character
        rows.append([pid, "王芳", "2", "01", pid[6:14], "500103", "渝中区", "10", "0", None, "I",
                     "2026-10-01 08:00:00"])
    return rows


def test_a_batch_over_a_contract_threshold_is_rejected_under_its_own_id(tmp_path):
    cat = catalog()
    pop = cat.resource("PS_POP_BASIC")
    columns = output_columns(pop)
    rows = _rows(2000, bad_every=20)  # 5 % bad citizen IDs; the list allows 0.5 %
    data = {c: [r[i] for r in rows] for i, c in enumerate(columns)}
    table = pa.table({**data, "_file": ["page-1"] * len(rows),
                      "_line": pa.array(range(1, len(rows) + 1), pa.int32())})
    parsed = ParsedBatch("PS_POP_BASIC", "chg-00000042", "incremental", len(rows), table)
    folder, landed = land(tmp_path / "landing", "PS", parsed, {"kind": "api"})
    with duckdb.connect(str(tmp_path / "wh.duckdb")) as con:
        ensure_schema(con, cat)
        with pytest.raises(BatchRejected) as rejected:
            load_batch(con, cat, pop, folder, rows=landed, today=dt.date(2026, 10, 3),
                       report_dir=tmp_path / "reports")
    assert rejected.value.code == "contract_threshold", rejected.value.message
    assert rejected.value.batch_id == "chg-00000042"
    assert {r[1] for r in rejected.value.contract_results} == {"chg-00000042"}
