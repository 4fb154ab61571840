"""Probabilistic person linking with Splink 5 on DuckDB.

Only what the deterministic keys cannot settle goes through the model: mentions whose document is
missing, invalid or contradicted, and documents that are not citizen IDs (passports, permits).
Each is compared with the citizen-ID persons the hub knows ("anchors": one row per ID, the
population register's attributes first). The model's comparisons are defined here; its trained
parameters are data, versioned in catalogs/identity/person_model.json (`huiliu identity train`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from pipelines import paths

MODEL = paths.CATALOGS / "identity" / "person_model.json"
ACCEPT = 0.99  # match probability a link needs, and it must be the unit's single best candidate
log = logging.getLogger(__name__)
logging.getLogger("splink").setLevel(logging.WARNING)

COLUMNS = "unique_id, name_simplified, name_pinyin, birth_date, sex, division"


def settings():
    """The model's structure (comparisons and blocking); training fills in m and u."""
    import splink.comparison_level_library as cll
    from splink import SettingsCreator, block_on
    from splink.comparison_library import CustomComparison

    def level(lvl, m: float):
        return lvl.configure(m_probability=m)

    # m (how often a true match lands on each level) is declared: the stored records are the
    # ones that passed their contracts, so near-misses are too rare in them to learn from. u
    # (how often two different persons do) is learnt from random pairs by `huiliu identity train`.
    name = CustomComparison(output_column_name="name", comparison_levels=[
        cll.NullLevel("name_simplified"),
        level(cll.ExactMatchLevel("name_simplified"), 0.92),
        level(cll.ExactMatchLevel("name_pinyin").configure(
            label_for_charts="same sound (homophone)"), 0.04),
        level(cll.JaroWinklerLevel("name_pinyin", 0.92), 0.02),
        level(cll.JaroWinklerLevel("name_pinyin", 0.80), 0.01),
        level(cll.ElseLevel(), 0.01)])
    birth = CustomComparison(output_column_name="birth_date", comparison_levels=[
        cll.NullLevel("birth_date"),
        level(cll.ExactMatchLevel("birth_date"), 0.95),
        level(cll.DamerauLevenshteinLevel("birth_text", 1).configure(
            label_for_charts="one digit typed wrong or two swapped"), 0.03),
        level(cll.CustomLevel("year(birth_date_l) = year(birth_date_r)", "same year"), 0.01),
        level(cll.ElseLevel(), 0.01)])
    sex = CustomComparison(output_column_name="sex", comparison_levels=[
        cll.NullLevel("sex"), level(cll.ExactMatchLevel("sex"), 0.99),
        level(cll.ElseLevel(), 0.01)])
    division = CustomComparison(output_column_name="division", comparison_levels=[
        cll.NullLevel("division"),
        level(cll.ExactMatchLevel("division"), 0.55),
        level(cll.CustomLevel("substr(division_l, 1, 4) = substr(division_r, 1, 4)",
                              "same city"), 0.25),
        # a node's records mostly lie in one province: random pairs rarely reach this level,
        # so its u is declared too (training overwrites it when it sees enough)
        level(cll.CustomLevel("substr(division_l, 1, 2) = substr(division_r, 1, 2)",
                              "same province"), 0.12).configure(u_probability=0.01),
        level(cll.ElseLevel(), 0.08)])
    return SettingsCreator(
        link_type="link_only", unique_id_column_name="unique_id",
        comparisons=[name, birth, sex, division],
        blocking_rules_to_generate_predictions=[
            block_on("birth_date"), block_on("name_pinyin"),
            block_on("name_simplified", "substr(division, 1, 2)")],
        retain_intermediate_calculation_columns=False, retain_matching_columns=False)


def splink_db():
    """Splink's DuckDB: in memory, without the progress bar it would print into logs."""
    import duckdb
    from splink import DuckDBAPI

    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    return DuckDBAPI(connection=con)


def _register(db_api, con, sql: str, name: str):
    """Register a query's rows (with the text form of the birth date the model compares)."""
    table = con.sql(f"SELECT {COLUMNS}, strftime(birth_date, '%Y%m%d') AS birth_text "
                    f"FROM ({sql})").to_arrow_table()
    return db_api.register(table, dataset_display_name=name), table.num_rows


def predict_links(con, anchors_sql: str, candidates_sql: str, model: Path = MODEL) -> list[tuple]:
    """(candidate unique_id, anchor unique_id, match probability) for every candidate whose best
    anchor reaches ACCEPT and is its only anchor that does."""
    from splink import Linker

    # its own in-memory database: Splink's work tables (and any statement or transaction of its
    # own) stay out of the warehouse and out of the reconcile transaction `con` is in; `con` is
    # only read, into Arrow tables, and sees that transaction's own writes
    db_api = splink_db()
    right, n = _register(db_api, con, candidates_sql, "candidates")
    if n == 0:
        return []
    left, anchors = _register(db_api, con, anchors_sql, "anchors")
    trained = json.loads(model.read_text())
    # the prior is the population's, not the training world's: one anchor in n is the person
    trained["probability_two_random_records_match"] = 1 / max(anchors, 2)
    linker = Linker([left, right], trained)
    pairs = linker.inference.predict(threshold_match_probability=0.5).as_duckdbpyrelation()
    rows = pairs.query("p", """
        SELECT unique_id_r, unique_id_l, match_probability FROM (
            SELECT *, count(*) FILTER (WHERE match_probability >= {a})
                          OVER (PARTITION BY unique_id_r) AS accepted,
                      row_number() OVER (PARTITION BY unique_id_r
                                         ORDER BY match_probability DESC) AS best
            FROM p WHERE source_dataset_l = 'anchors')
        WHERE best = 1 AND accepted = 1 AND match_probability >= {a}""".format(a=ACCEPT)
                      ).fetchall()
    return rows
