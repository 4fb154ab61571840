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

All the work is in DuckDB: pair counts are sums of n*(n-1)/2 over groups, never enumerated pairs.
"""

from __future__ import annotations

from pathlib import Path

# Resources whose record key starts with the person's citizen ID (the warehouse key as delivered).
_ID_KEYED = ("PS_POP_BASIC", "CA_SUBSISTENCE")
# What ID damage may leave in a key: full-width digits and X (pipelines/sim/defects.py _FW).
_FULLWIDTH = "０１２３４５６７８９Ｘｘ"
_ASCII = "0123456789Xx"
# The fields describing each role's person in a record about several things (a marriage names two
# people, an enterprise record names the enterprise first): only their defects touch the mention.
# Subject and deceased records are about the person, so any of their defects does.
_ROLE_FIELD_PREFIX = {"husband": "NF_", "wife": "NV_", "legal_rep": "FDDBR_"}
_OUTCOMES = ("correct", "wrongly_merged", "left_apart")
# Defects of the ID keying the record (GMSFHM; pipelines/sim/defects.py _damage_id, value_defects)
# and what each leaves in the delivered ID. The others on that field (id_bad_checksum, missing_key)
# leave a key that cannot be traced, or none: they touch no traced mention.
_KEY_DAMAGE = {
    "id_15_digit": "length(m.delivered_id) = 15",
    "id_fullwidth": f"m.delivered_id <> translate(m.delivered_id, '{_FULLWIDTH}', '{_ASCII}')",
    "id_space": "contains(m.delivered_id, ' ')",
    "id_lowercase_x": "m.delivered_id LIKE '%x%'",
}


def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def sql_upgrade_15_to_18(first17: str) -> str:
    """SQL twin of identifiers.upgrade_15_to_18 on a column holding the 17 digits (with '19'
    inserted): ISO 7064 MOD 11-2, weight of position i (0-based) = 2^(17-i) mod 11."""
    weighted = " + ".join(f"CAST(substr({first17}, {i + 1}, 1) AS INTEGER) * {pow(2, 17 - i, 11)}"
                          for i in range(17))
    return f"{first17} || substr('10X98765432', ({weighted}) % 11 + 1, 1)"


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def evaluate_person_linkage(con, truth_dir: Path) -> dict:
    """Score `ident.person_links` against the truth parquet files in `truth_dir`. Returns plain
    numbers and lists (JSON-serialisable); ratios are None when their denominator is 0."""
    truth = {name: _sql_str(str(Path(truth_dir) / f"{name}.parquet"))
             for name in ("records", "persons", "marriages", "enterprises", "defects")}
    id_keyed = ", ".join(_sql_str(r) for r in _ID_KEYED)
    tables = ("_eval_traced", "_eval_mention", "_eval_cell", "_eval_entity", "_eval_person")
    try:
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _eval_traced AS
            WITH m AS (
                SELECT pm.mention_id, pm.resource, pm.role, pm.record_key,
                       pl.mention_id IS NOT NULL AS linked,
                       -- an unlinked mention is an entity of its own: it is not merged with anyone
                       coalesce(pl.entity_id, 'unlinked:' || pm.mention_id) AS entity,
                       coalesce(pl.method, 'unlinked') AS method,
                       CASE WHEN pm.resource IN ({id_keyed})
                            THEN split_part(pm.record_key, '|', 1) END AS delivered_id,
                       -- id_space inserts ASCII spaces only (a regex: 2 s at 1.5M mentions)
                       upper(replace(translate(delivered_id, '{_FULLWIDTH}', '{_ASCII}'), ' ', ''))
                           AS key_id,
                       substr(pm.record_key, length(split_part(pm.record_key, '|', 1)) + 1)
                           AS key_rest
                FROM ident.person_mentions pm LEFT JOIN ident.person_links pl USING (mention_id)
            ), m15 AS (
                SELECT *, CASE WHEN regexp_full_match(key_id, '[0-9]{{15}}')
                               THEN substr(key_id, 1, 6) || '19' || substr(key_id, 7) END AS first17
                FROM m
            ), k AS (
                SELECT * EXCLUDE (first17, key_id),
                       CASE WHEN first17 IS NOT NULL THEN {sql_upgrade_15_to_18('first17')}
                            ELSE key_id END AS clean_id
                FROM m15
            ), truth_record AS (  -- one entity per clean key (min() only guards the join)
                SELECT resource, key, min(entity_id) AS entity_id
                FROM read_parquet({truth['records']}) WHERE key IS NOT NULL GROUP BY ALL
            )
            SELECT k.mention_id, k.resource, k.role, k.linked, k.entity, k.method,
                   k.record_key, k.delivered_id,
                   coalesce(k.clean_id || k.key_rest, k.record_key) AS clean_key,
                   CASE k.role
                       WHEN 'husband' THEN mar.husband_id
                       WHEN 'wife' THEN mar.wife_id
                       WHEN 'legal_rep' THEN ent.legal_rep_id
                       ELSE CASE WHEN r.entity_id LIKE 'P%' THEN r.entity_id
                                 WHEN r.entity_id IS NULL THEN by_id.person_id END
                   END AS person
            FROM k
            LEFT JOIN truth_record r
                ON r.resource = k.resource AND r.key = coalesce(k.clean_id || k.key_rest,
                                                                k.record_key)
            LEFT JOIN read_parquet({truth['marriages']}) mar ON mar.entity_id = r.entity_id
            LEFT JOIN read_parquet({truth['enterprises']}) ent ON ent.entity_id = r.entity_id
            LEFT JOIN (SELECT person_id, gmsfhm FROM read_parquet({truth['persons']})) by_id
                ON k.role IN ('subject', 'deceased') AND by_id.gmsfhm = k.clean_id""")
        con.execute("""
            CREATE OR REPLACE TEMP TABLE _eval_cell AS
            SELECT entity, person, count(*) AS n FROM _eval_traced
            WHERE person IS NOT NULL GROUP BY ALL""")
        # majority person of each predicted entity, home entity of each person (ties: lowest id)
        con.execute("""
            CREATE OR REPLACE TEMP TABLE _eval_entity AS
            SELECT entity, size, person AS majority_person, n AS majority_n FROM (
                SELECT *, sum(n) OVER (PARTITION BY entity) AS size,
                       row_number() OVER (PARTITION BY entity ORDER BY n DESC, person) AS rk
                FROM _eval_cell) WHERE rk = 1""")
        con.execute("""
            CREATE OR REPLACE TEMP TABLE _eval_person AS
            SELECT person, size, entity AS home_entity, n AS home_n FROM (
                SELECT *, sum(n) OVER (PARTITION BY person) AS size,
                       row_number() OVER (PARTITION BY person ORDER BY n DESC, entity) AS rk
                FROM _eval_cell) WHERE rk = 1""")
        # correct: in the entity holding most of its person's mentions, that person being the
        # entity's majority; wrongly merged: in an entity where another person is the majority;
        # left apart: in a fragment of its own person beside that person's main entity.
        con.execute("""
            CREATE OR REPLACE TEMP TABLE _eval_mention AS
            SELECT m.*, CASE WHEN e.majority_person IS NULL THEN NULL
                             WHEN e.majority_person <> m.person THEN 'wrongly_merged'
                             WHEN p.home_entity = m.entity THEN 'correct'
                             ELSE 'left_apart' END AS outcome
            FROM _eval_traced m
            LEFT JOIN _eval_entity e ON e.entity = m.entity AND m.person IS NOT NULL
            LEFT JOIN _eval_person p ON p.person = m.person""")

        total, evaluated, unlinked, persons, entities = con.execute("""
            SELECT count(*), count(person), count(*) FILTER (WHERE NOT linked),
                   count(DISTINCT person), count(DISTINCT entity) FILTER (WHERE person IS NOT NULL)
            FROM _eval_mention""").fetchone()
        tp_pairs = con.execute("SELECT coalesce(sum(n * (n - 1) // 2), 0) FROM _eval_cell"
                               ).fetchone()[0]
        predicted_pairs, majority_total = con.execute(
            "SELECT coalesce(sum(size * (size - 1) // 2), 0), coalesce(sum(majority_n), 0) "
            "FROM _eval_entity").fetchone()
        true_pairs, home_total = con.execute(
            "SELECT coalesce(sum(size * (size - 1) // 2), 0), coalesce(sum(home_n), 0) "
            "FROM _eval_person").fetchone()
        precision = _ratio(int(tp_pairs), int(predicted_pairs))
        recall = _ratio(int(tp_pairs), int(true_pairs))
        f1 = (2 * precision * recall / (precision + recall)
              if precision is not None and recall is not None and precision + recall else None)

        unmatched = con.execute("""
            SELECT resource, role, count(*) FROM _eval_mention WHERE person IS NULL
            GROUP BY ALL ORDER BY 1, 2""").fetchall()
        outcome_sums = ", ".join(f"count(*) FILTER (WHERE outcome = '{o}')" for o in _OUTCOMES)
        by_method = con.execute(f"""
            SELECT method, count(*), {outcome_sums} FROM _eval_mention
            WHERE person IS NOT NULL GROUP BY ALL ORDER BY 1""").fetchall()
        overall = con.execute(f"SELECT {outcome_sums} FROM _eval_mention").fetchone()

        # Twins: same parents, birth date and address, so the classic false merge. A pair counts
        # once however many entities hold both of them.
        twins = f"""(SELECT person_id, twin_group FROM read_parquet({truth['persons']})
                     WHERE twin_group IS NOT NULL)"""
        twin_pairs = con.execute(f"""
            SELECT count(*) FROM {twins} a JOIN {twins} b
                ON a.twin_group = b.twin_group AND a.person_id < b.person_id
            WHERE a.person_id IN (SELECT person FROM _eval_person)
              AND b.person_id IN (SELECT person FROM _eval_person)""").fetchone()[0]
        merged_twins = con.execute(f"""
            WITH t AS (SELECT DISTINCT c.entity, c.person, tw.twin_group
                       FROM _eval_cell c JOIN {twins} tw ON tw.person_id = c.person)
            SELECT a.person, b.person, min(a.entity) FROM t a JOIN t b
                ON a.entity = b.entity AND a.twin_group = b.twin_group AND a.person < b.person
            GROUP BY 1, 2 ORDER BY 1, 2""").fetchall()

        # Damage to the ID that keys the record made a warehouse record of its own (the key is
        # stored as delivered): it touches that mention, not the clean one of other deliveries.
        key_damage = " ".join(f"WHEN d.defect_code = '{code}' THEN {test}"
                              for code, test in _KEY_DAMAGE.items())
        role_prefix = " ".join(f"WHEN '{role}' THEN d.field LIKE '{prefix}%'"
                               for role, prefix in _ROLE_FIELD_PREFIX.items())
        by_defect = con.execute(f"""
            WITH touched AS (  -- a mention once per defect code, however often it was injected
                SELECT DISTINCT m.mention_id, d.defect_code, m.outcome
                FROM _eval_mention m
                JOIN (SELECT DISTINCT resource, key, defect_code, field
                      FROM read_parquet({truth['defects']}) WHERE key IS NOT NULL) d
                    ON d.resource = m.resource AND d.key = m.clean_key
                WHERE m.person IS NOT NULL
                  AND (d.field IS NULL OR CASE m.role {role_prefix} ELSE true END)
                  AND CASE WHEN d.field IS DISTINCT FROM 'GMSFHM' OR m.delivered_id IS NULL
                           THEN true
                           {key_damage} ELSE false END)
            SELECT defect_code, count(*), {outcome_sums} FROM touched
            GROUP BY ALL ORDER BY 1""").fetchall()
    finally:
        for t in tables:
            con.execute(f"DROP TABLE IF EXISTS {t}")

    def counts(row) -> dict:
        return {"mentions": int(row[0]), **{o: int(v) for o, v in zip(_OUTCOMES, row[1:],
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
        **{o: int(v) for o, v in zip(_OUTCOMES, overall, strict=True)},
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
    anomalies, persons = truth_dir / "anomalies.parquet", truth_dir / "persons.parquet"
    row = con.execute(f"""
        WITH truth AS (
            SELECT DISTINCT p.gmsfhm FROM read_parquet('{anomalies}') a
            JOIN read_parquet('{persons}') p USING (person_id)
            WHERE a.kind = 'subsistence_paid_after_death'
              AND '1:' || p.gmsfhm IN (SELECT doc_key FROM ident.person_mentions
                                       WHERE resource = 'CA_SUBSISTENCE')),
        found AS (
            SELECT DISTINCT substr(m.doc_key, 3) AS gmsfhm FROM gold.conflicts c
            JOIN ident.person_links l ON l.entity_id = c.entity_id
            JOIN ident.person_mentions m USING (mention_id)
            WHERE c.kind = 'subsistence_after_death' AND c.status = 'open'
              AND m.doc_key LIKE '1:%')
        SELECT (SELECT count(*) FROM truth), (SELECT count(*) FROM found),
               (SELECT count(*) FROM truth JOIN found USING (gmsfhm))""").fetchall()[0]
    return {"truth_persons": row[0], "found_persons": row[1], "found_and_true": row[2]}
