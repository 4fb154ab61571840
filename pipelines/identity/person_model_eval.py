"""How well the linking model does where it is needed: mentions whose ID cannot be used.

The warehouse's valid citizen IDs are the truth here (the evaluation against the simulator shows
them right, see BENCHMARKS.md). Every mention from another source that carries one is linked by
the model alone, as if its ID were missing — with what the record itself states (name; sex where
the record has a field or role for it; division) and, in a second pass, also the birth date (as
when an ID is damaged but still legible in its birth digits). A link is right when it lands on
the mention's own ID holder.
"""

from __future__ import annotations

from pipelines.identity import person_model
from pipelines.identity.linking import ID_UNIT
from pipelines.identity.mentions import own_value_condition

ANCHORS = f"""SELECT doc_key AS unique_id, name_simplified, name_pinyin, birth_date, sex, division
    FROM ident.person_mentions WHERE resource = 'PS_POP_BASIC' AND {ID_UNIT}"""


def _candidates(with_birth: bool) -> str:
    birth = "m.birth_date" if with_birth else (
        f"CASE WHEN {own_value_condition('birth_date')} THEN m.birth_date END")
    return f"""SELECT m.mention_id AS unique_id, m.name_simplified, m.name_pinyin,
            {birth} AS birth_date,
            CASE WHEN {own_value_condition('sex')} THEN m.sex END AS sex, m.division
        FROM ident.person_mentions m
        WHERE m.resource <> 'PS_POP_BASIC' AND m.doc_type = '1' AND m.key_state = 'valid'
          AND m.doc_key IN (SELECT doc_key FROM ident.person_mentions
                            WHERE resource = 'PS_POP_BASIC')"""


def evaluate_model(con) -> dict:
    out = {}
    for name, with_birth in (("id_withheld", False), ("id_withheld_birth_known", True)):
        links = person_model.predict_links(con, ANCHORS, _candidates(with_birth))
        con.execute("CREATE OR REPLACE TEMP TABLE _model_links (m VARCHAR, a VARCHAR, p DOUBLE)")
        if links:
            con.executemany("INSERT INTO _model_links VALUES (?, ?, ?)", links)
        total, right, wrong = con.execute(f"""
            SELECT count(*), count(*) FILTER (WHERE x.a = c.doc_key),
                   count(*) FILTER (WHERE x.a IS NOT NULL AND x.a <> c.doc_key)
            FROM ({_candidates(with_birth).replace('m.mention_id AS unique_id',
                                                   'm.mention_id, m.doc_key')}) c
            LEFT JOIN _model_links x ON x.m = c.mention_id""").fetchall()[0]
        out[name] = {"mentions": total, "linked_right": right, "linked_wrong": wrong,
                     "not_linked": total - right - wrong,
                     "precision": right / (right + wrong) if right + wrong else None,
                     "recall": right / total if total else None}
    return out
