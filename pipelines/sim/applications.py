"""Applications for pre-review (智能辅助审批), written with the truth (`applications.jsonl`): per
template, clean ones (every claim true, every eligibility met) and ones with one labelled error
— the kind and the rules (rule@role) a correct pre-review must not let pass. Drawn from the world's own
facts, for persons and enterprises of this node that never moved, so the hub has them.

Kinds: clean_school, wrong_birth_date, wrong_hukou, out_of_age_child, clean_assistance,
deceased_applicant, clean_marriage, married_claims_single, clean_enterprise,
deregistered_enterprise. (Edited certificates come with the certificate renderer.)"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np

from pipelines.sim.config import EPOCH, day_str

PER_KIND = 12
MARRIED = (20, 21, 22, 23)


def _iso(day: int) -> str:
    s = day_str(day)
    return f"{s[:4]}-{s[4:6]}-{s[6:]}"


def write_applications(out: Path, sim) -> Path:
    w, c, n = sim.world, sim.world.cols, sim.world.n
    today = sim._today
    rng = np.random.default_rng([sim.cfg.seed, 600, today])
    in_node = sim.in_node[c["county"][:n]]
    moved = np.isin(np.arange(n), np.fromiter(w.moved, dtype=np.int64))
    alive = c["death"][:n] < 0
    base = in_node & c["registered"][:n] & ~moved
    birth = c["birth"][:n]
    d = dt.date.fromordinal(EPOCH.toordinal() + today)
    entry = d.year if d.month >= 9 else d.year - 1  # six by 31 August of the entry year
    born_after = (dt.date(entry - 7, 8, 31) - EPOCH).days
    born_by = (dt.date(entry - 6, 8, 31) - EPOCH).days
    age = (today - birth) / 365.25
    node_counties = [k for k in range(len(w.data.counties)) if sim.in_node[k]]

    def pick(mask, k=PER_KIND):
        ids = np.nonzero(mask)[0]
        return [int(i) for i in rng.choice(ids, size=min(k, len(ids)), replace=False)] \
            if len(ids) else []

    def person_claims(p, *fields):
        have = {"name": w.name(p), "birth_date": _iso(int(birth[p])),
                "sex": str(int(c["sex"][p])), "hukou_division": w.county_code(int(c["county"][p]))}
        return {f: have[f] for f in fields}

    apps = []

    def add(kind, template, department, subjects, claimed, expected=()):
        apps.append({"id": f"APP-{len(apps) + 1:06d}", "label": kind, "template": template,
                     "purpose": template, "department": department, "subjects": subjects,
                     "claimed": claimed, "expected": list(expected)})

    school = base & alive & (birth > born_after) & (birth <= born_by)
    for p in pick(school):
        add("clean_school", "SCHOOL_ENROLL", "JYJ", {"child": w.id_of(p)},
            {"child": person_claims(p, "name", "birth_date", "sex", "hukou_division")})
    for p in pick(school):
        claims = person_claims(p, "name", "birth_date")
        claims["birth_date"] = _iso(int(birth[p]) + int(rng.integers(1, 40)))
        add("wrong_birth_date", "SCHOOL_ENROLL", "JYJ", {"child": w.id_of(p)},
            {"child": claims}, ["CLAIM_BIRTH_DATE@child"])
    for p in pick(school):
        claims = person_claims(p, "name", "hukou_division")
        others = [k for k in node_counties if k != int(c["county"][p])]
        claims["hukou_division"] = w.county_code(int(rng.choice(others)))
        add("wrong_hukou", "SCHOOL_ENROLL", "JYJ", {"child": w.id_of(p)},
            {"child": claims}, ["CLAIM_HUKOU_DIVISION@child"])
    for p in pick(base & alive & (age >= 8) & (age < 11)):
        add("out_of_age_child", "SCHOOL_ENROLL", "JYJ", {"child": w.id_of(p)},
            {"child": person_claims(p, "name", "birth_date")}, ["SCHOOL_AGE@child"])
    adult = base & (age >= 25)
    for p in pick(adult & alive):
        add("clean_assistance", "SOCIAL_ASSIST", "MZJ", {"applicant": w.id_of(p)},
            {"applicant": person_claims(p, "name")})
    cancelled = (c["cancel"][:n] >= 0) & (c["cancel"][:n] <= today)
    for p in pick(adult & ~alive & cancelled):
        add("deceased_applicant", "SOCIAL_ASSIST", "MZJ", {"applicant": w.id_of(p)},
            {"applicant": person_claims(p, "name")}, ["APPLICANT_ALIVE@applicant"])
    single = adult & alive & (c["marital"][:n] == 10) & (c["ps_marital"][:n] == 10)
    men, women = pick(single & (c["sex"][:n] == 1)), pick(single & (c["sex"][:n] == 2))
    for a, b in zip(men, women, strict=False):
        add("clean_marriage", "MARRIAGE_REG", "MZJ",
            {"party_a": w.id_of(a), "party_b": w.id_of(b)},
            {"party_a": person_claims(a, "name") | {"marital_status": "10"},
             "party_b": person_claims(b, "name") | {"marital_status": "10"}})
    married = adult & alive & np.isin(c["marital"][:n], MARRIED) & (
        c["marital"][:n] == c["ps_marital"][:n]) & (c["sex"][:n] == 1)
    for a, b in zip(pick(married), women, strict=False):
        add("married_claims_single", "MARRIAGE_REG", "MZJ",
            {"party_a": w.id_of(a), "party_b": w.id_of(b)},
            {"party_a": person_claims(a, "name") | {"marital_status": "10"},
             "party_b": person_claims(b, "name") | {"marital_status": "10"}},
            ["CLAIM_MARITAL_STATUS@party_a", "PARTY_A_FREE_TO_MARRY@party_a"])
    ents = [e for e in w.enterprises if sim.in_node[e.county]]
    active = [e for e in ents if e.status == "1"]
    gone = [e for e in ents if e.status == "2"]
    for e in [active[i] for i in rng.permutation(len(active))[:PER_KIND]]:
        add("clean_enterprise", "ENT_CHANGE", "SCJGJ", {"enterprise": e.uscc},
            {"enterprise": {"name": e.name}})
    for e in [gone[i] for i in rng.permutation(len(gone))[:PER_KIND]]:
        add("deregistered_enterprise", "ENT_CHANGE", "SCJGJ", {"enterprise": e.uscc},
            {"enterprise": {"name": e.name}}, ["ENTERPRISE_REGISTERED@enterprise"])
    path = out / "applications.jsonl"
    path.write_text("".join(json.dumps(a, ensure_ascii=False) + "\n" for a in apps),
                    encoding="utf-8")
    return path
