"""Contract speed: PS_POP_BASIC's full contract through Great Expectations on DuckDB, beside the
same rules as plain DuckDB SQL, in the same run on the same data (issue 3 §5: GX ≤ 3× plain SQL).

    python -m benchmarks.bench_contracts                  # 5,000,000 rows, 3 rounds
    python -m benchmarks.bench_contracts --modes none --repeat 1 --warm 0 --candidates all \\
        --query-log gx,gx_stock_sql --tag candidates      # prototypes, and GX's statements

Builds one deterministic typed PS_POP_BASIC batch in a child process (numpy + pyarrow; valid
GB 11643 IDs for ~99.7 % of rows, a few % of rows with defects; division codes from
catalogs/divisions.csv; cached as an Arrow IPC file under the temp dir), then measures each mode in
its own fresh child, `--repeat` rounds interleaved, so each peak RSS is its own. A child reads the
batch (untimed), times its imports, compiles the rules and builds the reference tables (untimed,
once per process), then calls its mode: once, plus `--warm` more calls in round 1 for GX modes.
  sql_per_rule   one DuckDB connection + sql_macros.MACROS + reference tables, the Arrow batch
                 registered, then `SELECT count(*) FROM batch WHERE <fail_sql>` per rule: THE
                 baseline (the failing count per rule is what GX must compute)
  sql_one_query  the same counts as one query, `count(*) FILTER (WHERE <fail_sql>)` per rule
  gx             pipelines.governance.contracts.validate.run_contract(rules, batch), as the hub calls it
The failing count per rule must agree across all modes, or the run stops.

`--candidates` measures prototype speed-ups of run_contract (code in this file; nothing in
pipelines/ is changed), `--query-log` runs a mode once more and prints every statement GX sends with
its time. Reports wall seconds (median, min–max), CPU seconds, peak RSS (VmHWM; getrusage agrees,
as the parent holds no data) and ratios to sql_per_rule; writes
benchmarks/results/contracts-<rows>[-<tag>].json. Notes: quality/notes/gx-speed.md.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import functools
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

if TYPE_CHECKING:
    import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
SEED = 20261126
# numpy, yaml and pyarrow.compute are imported inside the generator only: the measuring children
# import nothing their mode does not need (each child's peak RSS is its own).


# --- data ----------------------------------------------------------------------------------------

def _digits(values: np.ndarray, width: int) -> np.ndarray:
    """(n,) non-negative ints -> (n, width) ASCII digit bytes, most significant first."""
    import numpy as np

    p = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return ((values[:, None] // p) % 10 + 48).astype(np.uint8)


def _fixed_strings(chars: np.ndarray) -> pa.Array:
    """(n, w) uint8 ASCII -> a pyarrow array of n strings of w characters (no Python objects)."""
    import numpy as np

    n, w = chars.shape
    offsets = np.arange(0, n * w + 1, w, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets),
                                       pa.py_buffer(np.ascontiguousarray(chars).tobytes()))


def _patch(arr: pa.Array, rows: np.ndarray, values: list) -> pa.Array:
    """`arr` with arr[rows[i]] = values[i] (None = null); rows need not be sorted."""
    import numpy as np
    import pyarrow.compute as pc

    if len(rows) == 0:
        return arr
    order = np.argsort(rows, kind="stable")
    mask = np.zeros(len(arr), dtype=bool)
    mask[rows] = True
    return pc.replace_with_mask(arr, pa.array(mask), pa.array([values[i] for i in order],
                                                               type=arr.type))


def _weighted(d: dict) -> tuple[list, np.ndarray]:
    import numpy as np

    keys = list(d)
    w = np.array([float(d[k]) for k in keys])
    return keys, w / w.sum()


def make_batch(rows: int, seed: int = SEED) -> pa.Table:
    """A typed PS_POP_BASIC batch as the warehouse hands it to the contract (table `t`): the stored
    fields typed (strings, CSRQ/SWRQ date32), `_op`, `_gxsj` (timestamp) and `_ord` (BIGINT)."""
    import numpy as np
    import yaml

    W = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2], dtype=np.int64)
    CHECK = np.frombuffer(b"10X98765432", dtype=np.uint8)
    EPOCH = np.datetime64("1970-01-01", "D")
    rng = np.random.default_rng(seed)
    n = rows
    divs = list(csv.DictReader((ROOT / "catalogs" / "divisions.csv").open(encoding="utf-8")))
    county = [d for d in divs if d["level"] == "county" and len(d["code"]) == 6]
    current = np.array([int(d["code"]) for d in county if not d["valid_to"]])
    retired = [d for d in county if d["valid_to"]]
    node = np.array([c for c in current if c // 10000 == 50])
    names_by_code = {int(d["code"]): d["name"] for d in county}
    successor = {int(d["code"]): int(d["successor"]) for d in retired
                 if d["successor"][:6].isdigit() and len(d["successor"]) == 6}
    retired_codes = np.array([int(d["code"]) for d in retired])

    # Where each person was born (the ID's address code) and where the hukou is now.
    id_addr = np.where(rng.random(n) < 0.45, rng.choice(node, n), rng.choice(current, n))
    old = rng.random(n) < 0.10  # numbers issued under a since-retired county code
    id_addr[old] = rng.choice(retired_codes, int(old.sum()))
    hukou = id_addr.copy()
    moved = rng.random(n) < 0.15
    hukou[moved] = rng.choice(node, int(moved.sum()))
    succ_from = np.array(sorted(successor), dtype=np.int64)
    succ_to = np.array([successor[c] for c in succ_from], dtype=np.int64)
    at = np.clip(np.searchsorted(succ_from, hukou), 0, len(succ_from) - 1)
    renamed = ~moved & (succ_from[at] == hukou)  # the county got a new code: hukou follows it
    hukou[renamed] = succ_to[at[renamed]]
    still_retired = np.isin(hukou, retired_codes)
    hukou[still_retired] = rng.choice(node, int(still_retired.sum()))

    # Birth dates (age 0-100, more adults than children or the very old) and the ID number.
    age_days = np.clip(rng.normal(42, 20, n), 0, 100) * 365.25
    as_of = np.datetime64("2026-11-25", "D")
    birth = (as_of - age_days.astype(np.int64)).astype("datetime64[D]")
    y = birth.astype("datetime64[Y]").astype(np.int64) + 1970
    m = birth.astype("datetime64[M]").astype(np.int64) % 12 + 1
    d = (birth - birth.astype("datetime64[M]")).astype(np.int64) + 1
    seq = rng.integers(0, 1000, n)
    first17 = np.hstack([_digits(id_addr, 6), _digits(y * 10000 + m * 100 + d, 8), _digits(seq, 3)])
    check = CHECK[((first17.astype(np.int64) - 48) @ W) % 11]
    ids = np.hstack([first17, check[:, None]])
    defect = rng.random(n)
    bad_check = defect < 0.0022  # wrong check character
    ids[bad_check, 17] = np.where(ids[bad_check, 17] == ord("0"), ord("1"), ord("0"))
    bad_date = (defect >= 0.0022) & (defect < 0.0025)  # month 13, check character right for it
    ids[bad_date, 10:12] = np.frombuffer(b"13", dtype=np.uint8)
    ids[bad_date, 17] = CHECK[((ids[bad_date, :17].astype(np.int64) - 48) @ W) % 11]
    gmsfhm = _fixed_strings(ids)
    rows_v, vals = [], []
    pick = np.flatnonzero((defect >= 0.0025) & (defect < 0.0030))  # truncated to 17 characters
    rows_v += list(pick)
    vals += [bytes(ids[i, :17]).decode() for i in pick]
    pick = np.flatnonzero((defect >= 0.0030) & (defect < 0.0034))  # cosmetic: a space (valid)
    rows_v += list(pick)
    vals += [bytes(ids[i, :6]).decode() + " " + bytes(ids[i, 6:]).decode() for i in pick]
    pick = np.flatnonzero((defect >= 0.0034) & (defect < 0.0040) & (y < 1984) & (y >= 1900))
    rows_v += list(pick)  # legacy 15-digit numbers of older people (valid)
    vals += [bytes(ids[i, :6]).decode() + bytes(ids[i, 8:17]).decode() for i in pick]
    gmsfhm = _patch(gmsfhm, np.array(rows_v, dtype=np.int64), vals)

    # Name, from the simulator's name pools; a pool of distinct names taken by index.
    nm = yaml.safe_load((ROOT / "catalogs" / "sim" / "names.yaml").read_text(encoding="utf-8"))
    sk, sw = _weighted(nm["surnames"])
    gk, gw = _weighted({**nm["given_male"], **nm["given_female"]})
    pool_n = 200_000
    sur = rng.choice(len(sk), pool_n, p=sw)
    g1 = rng.choice(len(gk), pool_n, p=gw)
    g2 = rng.choice(len(gk), pool_n, p=gw)
    two = rng.random(pool_n) < 0.7
    pool = pa.array([sk[a] + gk[b] + (gk[c] if t else "") for a, b, c, t in
                     zip(sur, g1, g2, two, strict=True)])
    xm = pool.take(pa.array(rng.integers(0, pool_n, n)))
    defect = rng.random(n)
    xm = _patch(xm, np.flatnonzero(defect < 0.0003), [None] * int((defect < 0.0003).sum()))
    over = np.flatnonzero((defect >= 0.0003) & (defect < 0.0005))  # overlong
    xm = _patch(xm, over, ["阿卜杜热合曼·买买提" * 6] * len(over))

    # Sex from ID digit 17; variants (valid), out-of-table and overlong values.
    xbdm_idx = (seq % 2 == 0).astype(np.int64)  # odd sequence = male "1", even = female "2"
    xbdm = pa.array(["1", "2"]).take(pa.array(xbdm_idx))
    defect = rng.random(n)
    cuts = [(0.0002, None), (0.0006, "X"), (0.0008, "12"), (0.0015, "M"), (0.0020, "男"),
            (0.0022, "9")]
    xbdm = _patch_bands(xbdm, defect, cuts)

    # Ethnicity: mostly 汉族 "01" (Chongqing also has 土家族 15 and 苗族 06); optional.
    codes = sorted({*_yaml("ETHNICITY")["values"]})
    w = np.full(len(codes), 0.02 / (len(codes) - 3))
    w[codes.index("01")] = 0.91
    w[codes.index("15")] = 0.045
    w[codes.index("06")] = 0.025
    mzdm = pa.array(codes).take(pa.array(rng.choice(len(codes), n, p=w / w.sum())))
    defect = rng.random(n)
    mzdm = _patch_bands(mzdm, defect, [(0.03, None), (0.0303, "57"), (0.0306, "99"),
                                       (0.0309, "XX"), (0.0311, "015")])

    # Hukou division (required), address (optional).
    hjdz = _fixed_strings(_digits(hukou, 6))
    defect = rng.random(n)
    hjdz = _patch_bands(hjdz, defect, [(0.0002, None), (0.0004, "5001031")])
    pl = yaml.safe_load((ROOT / "catalogs" / "sim" / "places.yaml").read_text(encoding="utf-8"))
    node_names = [names_by_code[c] for c in node]
    roads, comms = pl["roads"], pl["communities"]
    apool = pa.array([f"重庆市{node_names[i % len(node_names)]}{roads[(i // 7) % len(roads)]}"
                      f"{(i * 37) % 999 + 1}号{comms[i % len(comms)]}"
                      f"{(i * 13) % 30 + 1}栋{(i * 7) % 28 + 1}-{(i * 3) % 6 + 1}"
                      for i in range(100_000)])
    addr = apool.take(pa.array(rng.integers(0, len(apool), n)))
    defect = rng.random(n)
    addr = _patch_bands(addr, defect, [(0.05, None), (0.0502, "重庆市渝中区解放碑" * 25)])

    # Person status and death date (iff status "1"); marital status by age.
    st_codes, st_w = ["0", "1", "2", "3", "9"], [0.94, 0.03, 0.02, 0.005, 0.005]
    ryzt_i = rng.choice(5, n, p=st_w)
    ryzt = pa.array(st_codes).take(pa.array(ryzt_i))
    defect = rng.random(n)
    ryzt = _patch_bands(ryzt, defect, [(0.0001, None), (0.0003, "7"), (0.0004, "01")])
    dead = ryzt_i == 1
    death = birth.copy()
    death[dead] = birth[dead] + (rng.random(int(dead.sum())) * (as_of - birth[dead]).astype(
        np.int64)).astype(np.int64)
    swrq = pa.array((death - EPOCH).astype(np.int32), type=pa.date32(), mask=~dead)
    hy_codes = ["10", "20", "21", "22", "23", "30", "40", "90"]
    hy = rng.choice(len(hy_codes), n, p=[0.05, 0.55, 0.15, 0.05, 0.02, 0.08, 0.08, 0.02])
    hy[age_days < 20 * 365.25] = 0
    hyzk = pa.array(hy_codes).take(pa.array(hy))
    defect = rng.random(n)
    hyzk = _patch_bands(hyzk, defect, [(0.01, None), (0.015, "2"), (0.0153, "99"), (0.0155, "5"),
                                       (0.0156, "200")])

    # Cross-field defects: death date without the status (and the reverse), a birth date that
    # disagrees with the ID or lies in the future, a death date in the future.
    defect = rng.random(n)
    alive_dated = np.flatnonzero((defect < 0.0001) & ~dead)
    swrq = _patch(swrq, alive_dated, [dt.date(2020, 5, 1)] * len(alive_dated))
    dead_undated = np.flatnonzero((defect >= 0.0001) & (defect < 0.0003) & dead)
    swrq = _patch(swrq, dead_undated, [None] * len(dead_undated))
    future = np.flatnonzero((defect >= 0.0003) & (defect < 0.0004) & dead)
    swrq = _patch(swrq, future, [dt.date(2027, 3, 1)] * len(future))
    shift = np.zeros(n, dtype=np.int64)
    shift[(defect >= 0.0004) & (defect < 0.0009)] = 1  # typed one day off
    shift[(defect >= 0.0009) & (defect < 0.0010)] = 3650 * 3  # a birth date in the future
    csrq = pa.array((birth - EPOCH).astype(np.int32) + shift.astype(np.int32), type=pa.date32(),
                    mask=rng.random(n) < 0.0002)  # required: a few missing
    gxsj = (np.datetime64("2026-11-25T00:00:00", "us")
            + (rng.random(n) * 86_400e6).astype(np.int64).astype("timedelta64[us]"))
    # Sex disagreeing with ID digit 17; a hukou division retired before the record's date.
    defect = rng.random(n)
    flip = np.flatnonzero(defect < 0.0004)
    xbdm = _patch(xbdm, flip, ["2" if s % 2 else "1" for s in seq[flip]])
    stale = np.flatnonzero((defect >= 0.0004) & (defect < 0.0014))
    hjdz = _patch(hjdz, stale, [str(c) for c in rng.choice(retired_codes, len(stale))])
    # Contradictory versions: the same key and update time as another row, different content.
    dup = np.flatnonzero((defect >= 0.0014) & (defect < 0.0015))
    src = rng.integers(0, n, len(dup))
    gmsfhm = _patch(gmsfhm, dup, gmsfhm.take(pa.array(src)).to_pylist())
    gxsj[dup] = gxsj[src]
    parts = 25  # the drop's files, 1/25 of the batch each
    per = -(-n // parts)
    ordinal = np.arange(n, dtype=np.int64)
    fields = pa.table({
        "GMSFHM": gmsfhm, "XM": xm, "XBDM": xbdm, "MZDM": mzdm, "CSRQ": csrq,
        "HJDZ_XZQHDM": hjdz, "HJDZ_XXDZ": addr, "HYZKDM": hyzk, "RYZTDM": ryzt, "SWRQ": swrq,
        "_op": pa.array(["I"]).take(pa.array(np.zeros(n, dtype=np.int64))),
        "_gxsj": pa.array(gxsj, type=pa.timestamp("us")),
        "_file": pa.array([f"PS_POP_BASIC_{k:04d}.csv.gz" for k in range(parts)]).take(
            pa.array(ordinal // per)),
        "_line": pa.array(ordinal % per + 2),
        "_ord": pa.array(ordinal + 1),
    })
    # The content hash, as the warehouse computes it for table `t` (pipelines/backflow/load.py).
    import duckdb

    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    con.register("g", fields)
    stored = fields.column_names[:10]
    content = ", ".join(f"coalesce(CAST(\"{c}\" AS VARCHAR), '\\N')" for c in stored)
    cols = ", ".join(f'"{c}"' for c in stored)
    out = con.sql(f"SELECT {cols}, _op, _gxsj, md5(concat_ws(chr(31), {content})) AS _row_hash, "
                  f"_file, _line, _ord FROM g").to_arrow_table()  # insertion order kept
    con.close()
    return out.combine_chunks()


def _yaml(code_table: str) -> dict:
    import yaml

    return yaml.safe_load((ROOT / "catalogs" / "code_tables" / f"{code_table}.yaml").read_text(
        encoding="utf-8"))


def _patch_bands(arr: pa.Array, u: np.ndarray, cuts: list[tuple[float, str | None]]) -> pa.Array:
    """Rows with u in [previous cut, cut) get the cut's value (a defect or a rare variant)."""
    import numpy as np

    lo = 0.0
    rows, vals = [], []
    for hi, v in cuts:
        pick = np.flatnonzero((u >= lo) & (u < hi))
        rows.append(pick)
        vals += [v] * len(pick)
        lo = hi
    return _patch(arr, np.concatenate(rows), vals)


# --- the rules and the plain-SQL baseline -------------------------------------------------------

def contract_rules() -> list:
    """PS_POP_BASIC's row-level contract, compiled from the catalogue as the warehouse does."""
    from pipelines.catalog.model import catalog
    from pipelines.governance.contracts.rules import compile_rules

    cat = catalog()
    return [r for r in compile_rules(cat, cat.resources["PS_POP_BASIC"])
            if getattr(r, "row_level", True)]


def where(rule, table: str = "batch") -> str:
    """The rule's failing-row predicate over `table` (rules.py names the batch table itself)."""
    return rule.fail_where(table) if hasattr(rule, "fail_where") else rule.fail_sql


def _register_reference(con) -> None:
    try:
        from pipelines.governance.contracts.reference import register_reference_tables
    except ImportError:  # rules without reference tables
        return
    register_reference_tables(con)


def _sql_connection(batch: pa.Table):
    import duckdb

    from pipelines.governance.contracts.sql_macros import MACROS

    con = duckdb.connect()
    for m in MACROS:
        con.execute(m)
    _register_reference(con)
    con.register("batch", batch)
    return con


def sql_per_rule(rules: list, batch: pa.Table, timings: dict | None = None) -> dict[str, int]:
    """THE baseline: what GX must compute, the failing count of each rule, one query per rule."""
    con = _sql_connection(batch)
    out = {}
    for r in rules:
        t = time.perf_counter()
        out[r.rule_id] = con.execute(f"SELECT count(*) FROM batch WHERE {where(r)}").fetchone()[0]
        if timings is not None:
            timings[r.rule_id] = time.perf_counter() - t
    con.close()
    return out


def sql_one_query(rules: list, batch: pa.Table) -> dict[str, int]:
    """The same counts as one query: `count(*) FILTER (WHERE ...)` per rule, one scan."""
    con = _sql_connection(batch)
    cols = ", ".join(f"count(*) FILTER (WHERE {where(r)})" for r in rules)
    row = con.execute(f"SELECT {cols} FROM batch").fetchone()
    con.close()
    return {r.rule_id: n for r, n in zip(rules, row, strict=True)}


def gx_stock(rules: list, batch: pa.Table) -> dict[str, int]:
    from pipelines.governance.contracts.validate import run_contract

    return {x.rule.rule_id: x.failed for x in run_contract(rules, batch)}


# --- prototype speed-ups of run_contract (nothing in pipelines/ is changed) ---------------------

@functools.cache
def _proto_classes() -> dict:
    """A table-domain aggregate metric `count(*) FILTER (WHERE <fail_sql>)` and an expectation on
    it, defined once per process (GX registers them). GX bundles aggregate metrics of one domain
    into one SELECT: with every rule on it, GX sends one data query per batch."""
    from typing import ClassVar

    import sqlalchemy as sa
    from great_expectations.core.metric_domain_types import MetricDomainTypes
    from great_expectations.core.metric_function_types import MetricPartialFunctionTypes
    from great_expectations.execution_engine import SqlAlchemyExecutionEngine
    from great_expectations.expectations.expectation import BatchExpectation
    from great_expectations.expectations.metrics.metric_provider import metric_partial
    from great_expectations.expectations.metrics.table_metric_provider import TableMetricProvider

    class HuiliuRuleUnexpectedCount(TableMetricProvider):
        metric_name = "huiliu_rule.unexpected_count"
        value_keys = ("fail_sql",)

        @metric_partial(engine=SqlAlchemyExecutionEngine,
                        partial_fn_type=MetricPartialFunctionTypes.AGGREGATE_FN,
                        domain_type=MetricDomainTypes.TABLE)
        def _sqlalchemy(cls, execution_engine, metric_domain_kwargs, metric_value_kwargs, metrics,
                        runtime_configuration):
            pred = sa.text(metric_value_kwargs["fail_sql"])
            return sa.func.count().filter(pred), metric_domain_kwargs, {}

    class ExpectRowsToPassRule(BatchExpectation):
        fail_sql: str
        metric_dependencies: ClassVar[tuple[str, ...]] = ("huiliu_rule.unexpected_count",)
        success_keys: ClassVar[tuple[str, ...]] = ("fail_sql",)
        domain_keys: ClassVar[tuple[str, ...]] = ("batch_id", "row_condition", "condition_parser")

        def _validate(self, metrics, runtime_configuration=None, execution_engine=None):
            n = metrics["huiliu_rule.unexpected_count"]
            return {"success": n == 0, "result": {"observed_value": n}}

    return {"bundled": ExpectRowsToPassRule, "_metric": HuiliuRuleUnexpectedCount}


def _proto_expectation(rule, sql_rules: str, builtins: str):
    """The expectation for `rule`: as validate._expectation makes it ("hub"), or swapped.

    SQL rules: "stock" GX's own UnexpectedRowsExpectation (what the hub used before commit
    f43d026: every rule evaluated twice) or "bundled" (the aggregate metric above). Built-in
    rules (not-null, in-set, length): "hub" or "bundled"."""
    from great_expectations.expectations import UnexpectedRowsExpectation

    from pipelines.governance.contracts import validate

    e = validate._expectation(rule)
    is_sql = isinstance(e, UnexpectedRowsExpectation)
    kind = sql_rules if is_sql else builtins
    if kind == "hub":
        return e
    if kind == "stock":
        return UnexpectedRowsExpectation(unexpected_rows_query=e.unexpected_rows_query,
                                         meta=e.meta, description=e.description)
    return _proto_classes()[kind](fail_sql=where(rule), meta=e.meta,
                                  description=getattr(e, "description", None))


_REUSED: dict = {}  # rule ids -> (datasource, validation definition): one context per process


def gx_proto(rules: list, batch: pa.Table, *, reuse: bool = True, result_format: str = "SUMMARY",
             sql_rules: str = "hub", builtins: str = "hub",
             threads: int | None = None) -> dict[str, int]:
    """run_contract's steps with one knob each (the defaults do what run_contract does: one GX
    context per process, the hub's expectations, SUMMARY); returns the failing count per rule
    (-1 where the result format reports no count)."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    from pipelines.governance.contracts import gx_duckdb
    from pipelines.governance.contracts.sql_macros import MACROS

    key = tuple(r.rule_id for r in rules) + (sql_rules, builtins)
    init = list(MACROS) + ([f"SET threads = {threads}"] if threads else [])

    def hook(con) -> None:
        _register_reference(con)
        con.register("batch", batch)

    if reuse and key in _REUSED:
        ds, vd = _REUSED[key]
        with ds.get_execution_engine().get_connection() as c:  # the one open connection
            c.connection.dbapi_connection.register("batch", batch)
    else:
        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
        gx_duckdb._ON_CONNECT.append(hook)
        try:
            ds = context.data_sources.add_duckdb(name="hub", connection_string="duckdb:///:memory:",
                                                 init_sql=init)
            asset = ds.add_table_asset(name="batch", table_name="batch")
            bd = asset.add_batch_definition_whole_table("all")
            suite = context.suites.add(gx.ExpectationSuite(name=f"{rules[0].resource}_contract"))
            for r in rules:
                suite.add_expectation(_proto_expectation(r, sql_rules, builtins))
            vd = context.validation_definitions.add(gx.ValidationDefinition(
                name="batch_contract", data=bd, suite=suite))
            ds.get_execution_engine()  # connect now, while the hook is registered
            with ds.get_execution_engine().get_connection():
                pass
        finally:
            gx_duckdb._ON_CONNECT.remove(hook)
        if reuse:
            _REUSED[key] = (ds, vd)
    result = vd.run(result_format=result_format)
    if not reuse:  # a context per call: close its DuckDB connection with it
        ds.get_execution_engine().close()
    from pipelines.governance.contracts import validate

    out = {}
    for res in result.results:
        rid = res.expectation_config.meta["rule_id"]
        info = res.exception_info or {}
        problem = validate._exception(info) if hasattr(validate, "_exception") else \
            info.get("exception_message") if info.get("raised_exception") else None
        if problem:
            raise RuntimeError(f"{rid}: {problem}")
        r = res.result or {}
        n = r.get("unexpected_count", r.get("observed_value"))
        out[rid] = -1 if n is None else int(n)
    return out


CANDIDATES = {  # name -> (gx_proto keyword arguments, what differs from today's run_contract)
    "gx_proto": ({}, "the prototype runner with nothing changed (does what run_contract does)"),
    "gx_stock_sql": ({"sql_rules": "stock"}, "SQL rules as GX's own UnexpectedRowsExpectation "
                                             "(the hub before f43d026: each rule runs twice)"),
    "gx_no_reuse": ({"reuse": False}, "a new context, datasource and suite in every call "
                                      "(the hub before 7238072)"),
    "gx_basic": ({"result_format": "BASIC"}, 'result_format="BASIC" instead of "SUMMARY"'),
    "gx_boolean_only": ({"result_format": "BOOLEAN_ONLY"},
                        'result_format="BOOLEAN_ONLY" (reports no counts: unusable, a floor)'),
    "gx_bundled": ({"sql_rules": "bundled"}, "SQL rules as an aggregate metric that GX bundles "
                                             "into its one aggregate query"),
    "gx_all_bundled": ({"sql_rules": "bundled", "builtins": "bundled"},
                       "every rule as that aggregate metric: one data query per batch"),
    "gx_threads1": ({"threads": 1}, "DuckDB threads = 1 on GX's connection"),
}


# --- one measuring child --------------------------------------------------------------------------

def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _maxrss_mib() -> float:
    """getrusage's peak RSS. Linux carries it over fork + exec (the child starts at least at its
    parent's RSS), so the parent keeps no data: it generates the batch in a child too."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _hwm_mib() -> float:
    """Peak RSS of this process image only (VmHWM, reset by exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return _maxrss_mib()


def read_batch(path: str) -> pa.Table:
    with pa.OSFile(path) as f:  # read fully into memory: no page faults inside the timed calls
        return pa.ipc.open_file(f).read_all()


class QueryLog:
    """Every statement GX sends through SQLAlchemy, with the time until the next one starts (that
    interval includes fetching and finishing a streamed result: DuckDB completes a streamed query
    when the next statement runs, so the execute time alone is attributed to the wrong query)."""

    def __init__(self) -> None:
        import sqlalchemy as sa

        self.rows: list[list] = []
        sa.event.listen(sa.engine.Engine, "before_cursor_execute", self._before)
        sa.event.listen(sa.engine.Engine, "after_cursor_execute", self._after)

    def _before(self, conn, cursor, statement, params, context, executemany) -> None:
        self.rows.append([time.perf_counter(), None, " ".join(statement.split())])

    def _after(self, conn, cursor, statement, params, context, executemany) -> None:
        self.rows[-1][1] = time.perf_counter()

    def report(self, rules: list, end: float) -> list[dict]:
        import re

        heads = {r.rule_id: " ".join(where(r).split())[:45] for r in rules if r.kind == "sql"}
        out = []
        for i, (start, done, stmt) in enumerate(self.rows):
            nxt = self.rows[i + 1][0] if i + 1 < len(self.rows) else end
            metrics = re.findall(r'AS "(\w+\.[\w.]+)"', stmt)
            rule_id = next((rid for rid, h in heads.items() if h in stmt), None)
            if stmt.startswith("SELECT COUNT(*) as unexpected_row_count"):
                kind = "count"
            elif stmt.startswith("SELECT _ord"):
                kind = "rows, streamed (200 fetched)"
            elif "AS unexpected_values" in stmt:
                kind = "partial_unexpected_list (LIMIT 20)"
                rule_id = stmt.split('"')[1]  # the column
            elif metrics:
                kind = "aggregate bundle"
                rule_id = f"{len(metrics)} metrics: " + ", ".join(sorted(set(
                    m.rsplit(".", 1)[0] for m in metrics)))
            else:
                kind, rule_id = "reflection/other", None
            out.append({"kind": kind, "rule": rule_id, "execute_s": round((done or nxt) - start, 4),
                        "until_next_s": round(nxt - start, 4), "sql": stmt[:240]})
        return out


def child(mode: str, data: str, calls: int, query_log: bool) -> dict:
    t = time.perf_counter()
    batch = read_batch(data)
    read_s = time.perf_counter() - t
    rss_data = _hwm_mib()
    t = time.perf_counter()
    if mode in SQL_MODES:
        import duckdb  # noqa: F401
    else:
        import great_expectations  # noqa: F401

        from pipelines.governance.contracts import validate  # noqa: F401
    import_s = time.perf_counter() - t
    t = time.perf_counter()
    rules = contract_rules()
    try:  # the reference tables are built once per process (cached), for every mode alike
        from pipelines.governance.contracts.reference import reference_tables

        reference_tables()
    except ImportError:
        pass
    setup_s = time.perf_counter() - t
    log = QueryLog() if query_log else None
    fn = {"sql_per_rule": sql_per_rule, "sql_one_query": sql_one_query, "gx": gx_stock}.get(mode)
    if fn is None:
        fn = functools.partial(gx_proto, **CANDIDATES[mode][0])
    runs, per_rule_s = [], {}
    for i in range(calls):
        if log:
            log.rows.clear()
        t, c = time.perf_counter(), _cpu()
        counts = (sql_per_rule(rules, batch, per_rule_s) if mode == "sql_per_rule" and i == 0
                  else fn(rules, batch))
        end = time.perf_counter()
        runs.append({"seconds": end - t, "cpu_s": _cpu() - c, "peak_rss_mib": _hwm_mib(),
                     "ru_maxrss_mib": _maxrss_mib()})
        if log and i == 0:
            runs[-1]["queries"] = log.report(rules, end)
            runs[-1]["before_first_query_s"] = log.rows[0][0] - t if log.rows else None
    return {"mode": mode, "rows": batch.num_rows, "rules": len(rules), "read_s": read_s,
            "import_s": import_s, "setup_s": setup_s, "rss_after_data_mib": rss_data,
            "runs": runs, "counts": counts,
            "per_rule_s": per_rule_s}


# --- the parent: data once, children interleaved, table, results --------------------------------

MAIN_MODES = ["sql_per_rule", "sql_one_query", "gx"]
SQL_MODES = ("sql_per_rule", "sql_one_query")


def _generate(rows: int, path: str) -> None:
    """Child: build the batch and write it as an uncompressed Arrow IPC file."""
    t = time.perf_counter()
    batch = make_batch(rows)
    gen_s = time.perf_counter() - t
    tmp = path + ".tmp"
    with pa.OSFile(tmp, "wb") as f, pa.ipc.new_file(f, batch.schema) as w:
        w.write_table(batch)
    os.replace(tmp, path)
    print(json.dumps({"generate_s": gen_s, "mib": batch.nbytes / 2**20}))


def _data_file(rows: int) -> tuple[Path, dict | None]:
    """The batch, generated once per (rows, seed, generator source) in a child and cached."""
    import hashlib
    import inspect

    src = "".join(inspect.getsource(f) for f in (make_batch, _patch, _patch_bands, _digits,
                                                 _fixed_strings, _weighted))
    tag = hashlib.sha256(src.encode()).hexdigest()[:10]
    folder = Path(tempfile.gettempdir()) / "huiliu-bench-contracts"
    path = folder / f"batch-{rows}-{SEED}-{tag}.arrow"
    if path.exists():
        return path, None
    path.parent.mkdir(parents=True, exist_ok=True)
    out = subprocess.run([sys.executable, "-m", "benchmarks.bench_contracts", "--generate",
                          str(rows), "--data", str(path)], capture_output=True, text=True, cwd=ROOT)
    if out.returncode:
        raise SystemExit(f"data generation failed:\n{out.stderr[-3000:]}")
    return path, json.loads(out.stdout.strip().splitlines()[-1])


def _run_child(mode: str, data: Path, calls: int, query_log: bool = False) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.bench_contracts", "--child", mode, "--data", str(data),
           "--calls", str(calls)] + (["--log-queries"] if query_log else [])
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "GX_ANALYTICS_ENABLED": "False"})
    if out.returncode:
        raise SystemExit(f"benchmark child {mode} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _machine() -> dict:
    from importlib.metadata import version

    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    model = next((ln.split(":", 1)[1].strip() for ln in cpuinfo if ln.startswith("model name")),
                 platform.processor())
    mem_kb = next(int(ln.split()[1]) for ln in Path("/proc/meminfo").read_text().splitlines()
                  if ln.startswith("MemTotal"))
    return {"cpus": os.cpu_count(), "cpu_model": model, "ram_gib": round(mem_kb / 2**20, 1),
            "machine": platform.machine(), "python": platform.python_version(),
            **{p: version(p) for p in ("duckdb", "great_expectations", "duckdb_engine",
                                       "sqlalchemy", "pyarrow")}}


def _spread(xs: list[float]) -> str:
    if not xs:
        return "—"
    return f"{statistics.median(xs):.2f} ({min(xs):.2f}–{max(xs):.2f})" if len(xs) > 1 \
        else f"{xs[0]:.2f}"


def summarise(by_mode: dict[str, list[dict]], baseline: str = "sql_per_rule") -> list[dict]:
    """Median and spread per mode: first call of each child, warm calls, and the ratio to the
    baseline (of medians; and the median of same-round ratios, less hurt by load drifting)."""
    base = [c["runs"][0]["seconds"] for c in by_mode[baseline]]
    base_cpu = [c["runs"][0]["cpu_s"] for c in by_mode[baseline]]
    out = []
    for mode, children in by_mode.items():
        first = [c["runs"][0]["seconds"] for c in children]
        warm = [r["seconds"] for c in children for r in c["runs"][1:]]
        cpu = [c["runs"][0]["cpu_s"] for c in children]
        same_round = [f / b for f, b in zip(first, base, strict=False)]
        out.append({
            "mode": mode, "children": len(children), "first_s": first, "warm_s": warm,
            "first_cpu_s": cpu, "import_s": [c["import_s"] for c in children],
            "peak_rss_mib": max(r["peak_rss_mib"] for c in children for r in c["runs"]),
            "rss_after_data_mib": max(c["rss_after_data_mib"] for c in children),
            "ratio_first": statistics.median(first) / statistics.median(base),
            "ratio_warm": statistics.median(warm) / statistics.median(base) if warm else None,
            "ratio_same_round": statistics.median(same_round),
            "ratio_cpu": statistics.median(cpu) / statistics.median(base_cpu),
        })
    return out


def _print_table(summary: list[dict], describe: dict[str, str]) -> None:
    from pipelines.cli.tables import render

    rows = [(s["mode"], _spread(s["first_s"]), _spread(s["warm_s"]), _spread(s["first_cpu_s"]),
             round(s["peak_rss_mib"]), f"{s['ratio_first']:.2f}×",
             f"{s['ratio_warm']:.2f}×" if s["ratio_warm"] else "—",
             f"{s['ratio_same_round']:.2f}×", f"{s['ratio_cpu']:.2f}×", _spread(s["import_s"]))
            for s in summary]
    print(render(["mode", "s, first call: median (min–max)", "s, warm calls", "CPU s, first",
                  "peak RSS MiB", "ratio first", "ratio warm", "ratio same round", "ratio CPU",
                  "import s"], rows))
    for s in summary:
        if s["mode"] in describe:
            print(f"  {s['mode']}: {describe[s['mode']]}")


def _print_query_log(child_res: dict, baseline_per_rule: dict[str, float]) -> None:
    from pipelines.cli.tables import render

    q = child_res["runs"][0]["queries"]
    total = child_res["runs"][0]["seconds"]
    rows = [(i + 1, x["kind"], x["rule"] or "", f"{x['execute_s']:.3f}", f"{x['until_next_s']:.3f}",
             f"{baseline_per_rule[x['rule']]:.3f}" if x["rule"] in baseline_per_rule else "")
            for i, x in enumerate(q)]
    print(render(["#", "GX query", "rule / column / metrics", "execute s", "until next s",
                  "baseline s (same rule)"], rows))
    by_kind: dict[str, list[float]] = {}
    for x in q:
        by_kind.setdefault(x["kind"], []).append(x["until_next_s"])
    print(f"{len(q)} queries in a {total:.2f} s call; time until the next query, by kind: " +
          "; ".join(f"{k} {len(v)}× {sum(v):.2f} s" for k, v in by_kind.items()) +
          f"; before the first query (context, datasource, suite) "
          f"{child_res['runs'][0]['before_first_query_s']:.2f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--repeat", type=int, default=3, help="rounds; one fresh child per mode each")
    ap.add_argument("--warm", type=int, default=1,
                    help="warm calls after the first call, in the GX children of round 1")
    ap.add_argument("--modes", default=",".join(MAIN_MODES),
                    help="comma list; 'none' to run only the baseline and --candidates")
    ap.add_argument("--candidates", default="",
                    help="comma list of prototype modes, or 'all':\n" + "\n".join(
                        f"  {k}: {v[1]}" for k, v in CANDIDATES.items()))
    ap.add_argument("--query-log", default="",
                    help="comma list of modes to run once more, logging every statement GX sends")
    ap.add_argument("--tag", default="", help="results file suffix: contracts-<rows>[-<tag>].json")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--generate", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--calls", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--log-queries", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.generate:
        return _generate(args.generate, args.data)
    if args.child:
        print(json.dumps(child(args.child, args.data, args.calls, args.log_queries)))
        return

    started = time.perf_counter()
    load_before = os.getloadavg()
    data, gen = _data_file(args.rows)
    modes = [] if args.modes == "none" else args.modes.split(",")
    cands = list(CANDIDATES) if args.candidates == "all" else \
        [c for c in args.candidates.split(",") if c]
    if "sql_per_rule" not in modes:
        modes = ["sql_per_rule"] + modes  # every ratio is against the baseline of the same run
    by_mode: dict[str, list[dict]] = {m: [] for m in modes + cands}
    for rnd in range(args.repeat):
        for m in modes + cands:
            warm = 0 if m in SQL_MODES or rnd else args.warm
            by_mode[m].append(_run_child(m, data, 1 + warm))
    qlogs = {m: _run_child(m, data, 1, query_log=True) for m in args.query_log.split(",") if m}

    ref = by_mode["sql_per_rule"][0]["counts"]
    for m, children in list(by_mode.items()) + [(f"{m} (query log)", [c]) for m, c in
                                                 qlogs.items()]:
        for c in children:
            bad = {k: (ref[k], c["counts"].get(k)) for k in ref
                   if c["counts"].get(k) not in (ref[k], -1)}
            if bad:
                raise SystemExit(f"{m} disagrees with the baseline (baseline, {m}): {bad}")
    summary = summarise(by_mode)
    elapsed = time.perf_counter() - started
    print(f"{args.rows:,} rows ({by_mode['sql_per_rule'][0]['rss_after_data_mib']:.0f} MiB RSS "
          f"with the batch read), {by_mode['sql_per_rule'][0]['rules']} rules of PS_POP_BASIC, "
          f"{sum(ref.values()):,} rule failures; {args.repeat} round(s), each mode in a fresh "
          f"child; data " + (f"generated in {gen['generate_s']:.1f} s" if gen else "reused")
          + f" ({data.name}); load average {load_before[0]:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after; run {elapsed:.0f} s; {os.cpu_count()} cores, "
          f"Python {platform.python_version()}")
    _print_table(summary, {c: CANDIDATES[c][1] for c in cands})
    for m, q in qlogs.items():
        print(f"\nquery log: {m}")
        _print_query_log(q, by_mode["sql_per_rule"][0]["per_rule_s"])
    RESULTS.mkdir(exist_ok=True)
    name = f"contracts-{args.rows}" + (f"-{args.tag}" if args.tag else "") + ".json"
    (RESULTS / name).write_text(json.dumps(
        {"command": " ".join(["python -m benchmarks.bench_contracts"] + sys.argv[1:]),
         "rows": args.rows, "seed": SEED, "repeat": args.repeat, "warm": args.warm,
         "machine": _machine(), "load_average_before": load_before,
         "load_average_after": os.getloadavg(), "generate": gen, "run_s": elapsed,
         "failing_per_rule": ref, "summary": summary,
         "candidates": {c: CANDIDATES[c][1] for c in cands},
         "children": by_mode, "query_logs": qlogs}, indent=1, default=str))
    print(f"wrote {RESULTS / name}")


if __name__ == "__main__":
    main()
