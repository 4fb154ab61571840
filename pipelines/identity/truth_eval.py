"""How good is the person linkage? `ident.person_links` scored against the simulator's ground truth.

Every mention is traced to the person it really names: subject and deceased mentions through the
truth record's entity (P<n>), husband and wife through the marriage (M<n>) the record describes,
legal representatives through the enterprise or social organisation (E<n>/O<n>). CA_SUBSISTENCE
rows are not in the truth's records (the simulator adds them to snapshots only), so a subject
mention without a truth record falls back to the person whose citizen ID keys it. Mentions naming
no simulated person (a foreign spouse's passport, a record the truth does not know) are counted and
left out of the scores.

The warehouse keys a record by the delivered values, the truth by the clean ones: a citizen ID in a
key is folded (full-width, spaces, lower-case x) and a 15-digit ID upgraded before matching.

All the work is in DuckDB, one statement per step in assets/sql/identity/truth_eval/: pair counts
are sums of n*(n-1)/2 over groups, never enumerated pairs.
"""

from __future__ import annotations

from pathlib import Path

from pipelines.warehouse.sql import load_sql

OUTCOMES = ("correct", "wrongly_merged", "left_apart")  # the outcome columns' order in the SQL
TRUTH_FILES = ("records", "persons", "marriages", "enterprises", "defects", "anomalies")
# the temp tables the scoring builds, in order, each from assets/sql/identity/truth_eval/<name>
STEPS = (("_eval_traced", "trace_mentions"), ("_eval_cell", "count_cells"),
         ("_eval_entity", "find_entity_majorities"), ("_eval_person", "find_person_homes"),
         ("_eval_mention", "classify_mentions"))


def sql_upgrade_15_to_18(first17: str) -> str:
    """SQL twin of identifiers.upgrade_15_to_18 on a column holding the 17 digits (with '19'
    inserted): ISO 7064 MOD 11-2, weight of position i (0-based) = 2^(17-i) mod 11."""
    weighted = " + ".join(f"CAST(substr({first17}, {i + 1}, 1) AS INTEGER) * {pow(2, 17 - i, 11)}"
                          for i in range(17))
    return f"{first17} || substr('10X98765432', ({weighted}) % 11 + 1, 1)"


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def _sql(name: str, truth: dict[str, str]) -> tuple[str, dict[str, str]]:
    """assets/sql/identity/truth_eval/<name>.sql and the truth files it names ($records, ...),
    to bind: DuckDB refuses a parameter the statement does not use."""
    sql = load_sql(f"identity/truth_eval/{name}")
    return sql, {k: v for k, v in truth.items() if f"${k}" in sql}


def _query(con, name: str, truth: dict[str, str]):
    return con.execute(*_sql(name, truth))


def _truth_files(truth_dir: Path) -> dict[str, str]:
    return {name: str(Path(truth_dir) / f"{name}.parquet") for name in TRUTH_FILES}


def evaluate_person_linkage(con, truth_dir: Path) -> dict:
    """Score `ident.person_links` against the truth parquet files in `truth_dir`. Returns plain
    numbers and lists (JSON-serialisable); ratios are None when their denominator is 0."""
    truth = _truth_files(truth_dir)
    try:
        _trace_and_classify(con, truth)
        return _scores(con, truth)
    finally:
        for table, _ in STEPS:
            con.execute(f"DROP TABLE IF EXISTS {table}")
        con.execute("DROP MACRO IF EXISTS _eval_upgrade_15_to_18")


def _trace_and_classify(con, truth: dict[str, str]) -> None:
    """Each mention traced to its true person, grouped by (entity, person), and classified."""
    con.execute("CREATE OR REPLACE TEMP MACRO _eval_upgrade_15_to_18(first17) AS "
                + sql_upgrade_15_to_18("first17"))
    for table, name in STEPS:
        sql, params = _sql(name, truth)
        con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS {sql}", params)


def _scores(con, truth: dict[str, str]) -> dict:
    total, evaluated, unlinked, persons, entities = _query(con, "count_mentions", truth).fetchone()
    tp_pairs, predicted_pairs, majority_total, true_pairs, home_total = _query(
        con, "count_pairs", truth).fetchone()
    precision = _ratio(int(tp_pairs), int(predicted_pairs))
    recall = _ratio(int(tp_pairs), int(true_pairs))
    f1 = (2 * precision * recall / (precision + recall)
          if precision is not None and recall is not None and precision + recall else None)
    unmatched = _query(con, "count_untraced", truth).fetchall()
    overall = _query(con, "count_outcomes", truth).fetchone()
    by_method = _query(con, "count_outcomes_by_method", truth).fetchall()
    twin_pairs = _query(con, "count_twin_pairs", truth).fetchone()[0]
    merged_twins = _query(con, "find_merged_twins", truth).fetchall()
    by_defect = _query(con, "count_outcomes_by_defect", truth).fetchall()

    def counts(row) -> dict:
        return {"mentions": int(row[0]), **{o: int(v) for o, v in zip(OUTCOMES, row[1:],
                                                                      strict=True)}}

    return {
        "mentions": int(total), "mentions_evaluated": int(evaluated),
        "mentions_without_true_person": int(total - evaluated),
        "without_true_person_by_source": [{"resource": r, "role": ro, "mentions": int(n)}
                                          for r, ro, n in unmatched],
        "mentions_unlinked": int(unlinked),
        "persons": int(persons), "predicted_entities": int(entities),
        "true_positive_pairs": int(tp_pairs), "predicted_pairs": int(predicted_pairs),
        "true_pairs": int(true_pairs), "precision": precision, "recall": recall, "f1": f1,
        "purity": _ratio(int(majority_total), int(evaluated)),
        "completeness": _ratio(int(home_total), int(evaluated)),
        **{o: int(v) for o, v in zip(OUTCOMES, overall, strict=True)},
        "twin_pairs": int(twin_pairs), "twin_pairs_merged": len(merged_twins),
        "merged_twins": [{"persons": [a, b], "entity": e} for a, b, e in merged_twins[:20]],
        "by_method": [{"method": r[0], **counts(r[1:])} for r in by_method],
        "by_defect": [{"defect_code": r[0], **counts(r[1:])} for r in by_defect],
    }


def format_summary(result: dict) -> str:
    """A few lines for the demo."""
    def pct(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.4%}"

    r = result
    lines = [
        f"mentions {r['mentions']:,}: {r['mentions_evaluated']:,} traced to {r['persons']:,} true "
        f"persons, {r['mentions_without_true_person']:,} name no simulated person; "
        f"{r['predicted_entities']:,} predicted entities",
        f"pairwise precision {pct(r['precision'])}  recall {pct(r['recall'])}  F1 {pct(r['f1'])}"
        f"  ({r['true_positive_pairs']:,} of {r['predicted_pairs']:,} predicted pairs, "
        f"{r['true_pairs']:,} true pairs)",
        f"purity {pct(r['purity'])}  completeness {pct(r['completeness'])}  |  correct "
        f"{r['correct']:,}, wrongly merged {r['wrongly_merged']:,}, left apart {r['left_apart']:,}",
        f"twin pairs merged: {r['twin_pairs_merged']} of {r['twin_pairs']}",
        "by method: " + ", ".join(f"{m['method']} {m['mentions']:,} ({m['correct']:,} correct)"
                                  for m in r["by_method"]),
    ]
    if r["by_defect"]:
        lines.append("by defect: " + ", ".join(
            f"{d['defect_code']} {d['correct']}/{d['mentions']}"
            + (f" (merged {d['wrongly_merged']}, apart {d['left_apart']})"
               if d["wrongly_merged"] or d["left_apart"] else "")
            for d in r["by_defect"]))
    return "\n".join(lines)


def evaluate_subsistence_conflicts(con, truth_dir: Path) -> dict:
    """The simulator's recorded anomalies (subsistence paid after death) against the hub's
    subsistence_after_death conflicts, counted in persons, for persons this node receives
    subsistence records of."""
    row = _query(con, "count_subsistence_after_death", _truth_files(truth_dir)).fetchall()[0]
    return {"truth_persons": row[0], "found_persons": row[1], "found_and_true": row[2]}
