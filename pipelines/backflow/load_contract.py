"""The contract step of a load: the typed rows of one batch checked against its contract (Great
Expectations), before they become versions (pipelines/backflow/load.py runs the steps).

Great Expectations takes about 3 s to import: it, the rules and the report are imported when a
batch is validated, not with backflow.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pipelines.backflow.batch_tables import CONTRACT_FAILED, LANDED, TYPED
from pipelines.backflow.parsed import BatchRejected
from pipelines.catalog.model import Catalog, Resource
from pipelines.catalog.sql_gen import ident, raw_line_expr, record_key_expr


def apply_contract(con, catalog: Catalog, r: Resource, batch_id: str, mode: str,
                   landed_cols: list[str], now: dt.datetime, report_dir: Path | None) -> int:
    """Validate the typed rows against the resource's contract: rows failing an error rule go to
    quarantine with the rule id (and leave TYPED); a rule failing more than its threshold blocks
    the batch (BatchRejected with the results). Returns the rows quarantined."""
    from pipelines.governance.contracts.reference import register_reference_tables
    from pipelines.governance.contracts.sql_macros import MACROS

    results = _validate(con, catalog, r, mode)
    rows = _result_rows(r, batch_id, results, now)
    for m in MACROS:  # the same rule predicates, on this connection only (not stored)
        con.execute(m.replace("CREATE OR REPLACE MACRO", "CREATE OR REPLACE TEMP MACRO"))
    register_reference_tables(con)
    if report_dir is not None:
        _write_report(con, r, batch_id, mode, results, report_dir)
    _refuse_if_blocked(r, batch_id, results, rows)
    con.executemany("INSERT INTO ops.contract_results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    rows)
    n = _quarantine_failing(con, r, batch_id, results, landed_cols, now)
    for name in ("divisions", "division_regions"):
        con.unregister(name)
    return n


def _validate(con, catalog: Catalog, r: Resource, mode: str) -> list:
    """Every rule of the resource's contract, and its volume rule, run over TYPED by GX."""
    from pipelines.governance.contracts.rules import compile_rules, contracts_config, volume_rule
    from pipelines.governance.contracts.validate import run_contract

    rules = compile_rules(catalog, r)
    window = int(contracts_config()["volume"]["window"])
    recent = [n for (n,) in con.execute("""SELECT received FROM ops.batches WHERE resource = ?
        AND mode = 'incremental' AND status = 'loaded' ORDER BY seq DESC LIMIT ?""",
                                        [r.code, window]).fetchall()][::-1]
    current = con.execute(f"SELECT count(*) FROM hist.{r.key} WHERE _is_current AND _op <> 'D'"
                          ).fetchall()[0][0]
    vol = volume_rule(r, mode, recent, current)
    return run_contract(rules + ([vol] if vol else []),
                        con.sql(f"SELECT * FROM {TYPED}").to_arrow_table())


def _result_rows(r: Resource, batch_id: str, results, now: dt.datetime) -> list[list]:
    """The results as ops.contract_results rows."""
    return [[r.code, batch_id, x.rule.rule_id, x.rule.field, x.rule.family, x.rule.severity,
             x.checked, x.failed, x.blocks_batch, now, x.observed,
             f"{x.observed} rows, allowed {x.rule.min_count}..{x.rule.max_count or ''}"
             if x.observed is not None else None] for x in results]


def _refuse_if_blocked(r: Resource, batch_id: str, results, rows: list[list]) -> None:
    """A rule over its threshold rejects the batch: the load rolls back, the rejection records the
    results."""
    blocked = [x for x in results if x.blocks_batch]
    if blocked:
        detail = "; ".join(f"{x.rule.rule_id} {x.failed}/{x.checked} rows fail "
                           f"({x.rule.reason_en}; allowed {x.rule.max_fail_rate:.1%})"
                           if x.rule.row_level else f"{x.rule.rule_id}: {x.observed} rows "
                           f"({x.rule.reason_en})" for x in blocked)
        raise BatchRejected("contract_threshold", f"{r.code}/{batch_id}: {detail}",
                            batch_id=batch_id, contract_results=rows)


def _quarantine_failing(con, r: Resource, batch_id: str, results, landed_cols: list[str],
                        now: dt.datetime) -> int:
    """Rows failing an error rule go to quarantine, once per rule they fail, and leave TYPED.
    Returns the rows quarantined."""
    failing = [x for x in results if x.failed and x.rule.severity == "error" and x.rule.row_level]
    if not failing:
        return 0
    con.execute(f"CREATE OR REPLACE TEMP TABLE {CONTRACT_FAILED} (_ord BIGINT)")
    for x in failing:
        reason = f"{x.rule.reason_zh} / {x.rule.reason_en}: "
        where = x.rule.fail_where(TYPED)
        n = con.execute(f"""INSERT INTO ops.quarantine SELECT ?, ?, s._file, s._line, ?, ?,
                ? || coalesce(f.v, 'NULL'), {raw_line_expr(landed_cols)}, ?, f.record_key
            FROM (SELECT _ord, CAST({ident(x.rule.field)} AS VARCHAR) AS v,
                         {record_key_expr(r)} AS record_key FROM {TYPED} WHERE {where}) f
            JOIN {LANDED} s USING (_ord) ORDER BY s._ord""",
                        [r.code, batch_id, x.rule.field, x.rule.rule_id, reason,
                         now]).fetchall()[0][0]
        if n != x.failed:  # GX and the quarantine predicate must agree, or nothing commits
            raise AssertionError(f"{x.rule.rule_id}: GX counted {x.failed} failing rows, the "
                                 f"quarantine predicate selects {n}")
        con.execute(f"INSERT INTO {CONTRACT_FAILED} SELECT _ord FROM {TYPED} WHERE {where}")
    n = con.execute(f"SELECT count(DISTINCT _ord) FROM {CONTRACT_FAILED}").fetchall()[0][0]
    con.execute(f"DELETE FROM {TYPED} WHERE _ord IN (SELECT _ord FROM {CONTRACT_FAILED})")
    return n


def _write_report(con, r: Resource, batch_id: str, mode: str, results, report_dir: Path) -> None:
    """The batch's validation report (HTML), with a few failing rows per rule as examples."""
    import great_expectations as gx

    from pipelines.reports import validation_html as vh

    examples = []
    for x in results:
        if x.failed and x.rule.row_level:
            value = f"CAST({ident(x.rule.field)} AS VARCHAR)" if x.rule.field else "NULL"
            for f, ln, key, v in con.execute(f"""SELECT _file, _line, {record_key_expr(r)}, {value}
                    FROM {TYPED} WHERE {x.rule.fail_where(TYPED)} ORDER BY _ord
                    LIMIT {vh.EXAMPLES_PER_RULE}""").fetchall():
                examples.append(vh.Example(x.rule.rule_id, f, ln, key, v))
    rows = con.execute(f"SELECT count(*) FROM {TYPED}").fetchall()[0][0]
    vh.write_validation(vh.Validation(
        r.code, r.name_zh, r.provider, batch_id, mode, rows, vh.now_text(), gx.__version__,
        vh.rule_lines(results), tuple(examples)), report_dir)
