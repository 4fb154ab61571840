"""What a department receives follows the source each value actually came from. Over the
simulator's world (backflowed, reconciled, published and served by the real service), every
consumer × purpose × template and every check is asked about subjects whose golden values come
from each resource, and every answer is compared with the rule stated from catalogs/ alone
(tests/release_rule.py) over the candidates the published warehouse holds:

- a released value is the best candidate among the sources the department may receive for the
  purpose; its provenance names that source and record, never another;
- a field no source of which may be released is withheld (a reason and nothing else); one whose
  receivable sources hold nothing is unavailable;
- a yes/no check is judged from that same candidate, or withheld;
- a role of which the department may receive no field carries no entity id.
"""

import itertools
import os
from collections import defaultdict

import duckdb
import httpx
import pytest
from release_rule import checks, receivable_sources

from pipelines.catalog.model import catalog
from pipelines.serving.credentials import Credentials
from pipelines.serving.templates import templates

from .serving_helpers import running_service

pytestmark = pytest.mark.integration
CAT = catalog()
PER_SOURCE = 6  # subjects picked per (golden field, resource a candidate comes from, its rank)


@pytest.fixture(scope="module")
def served(served_sim_world):
    s, _, service_env = served_sim_world
    creds = Credentials(s.home / "serving" / "credentials.sqlite")
    keys = {c.code: creds.issue(c.code) for c in CAT.consumers}
    env = {**os.environ, **service_env, "HUILIU_API_RATE": "1000000",
           "HUILIU_SERVE_CHECK_RATE": "1000000000"}
    with running_service(s.home, env) as url:
        yield url, keys, _Truth(s.published_current.resolve())


class _Truth:
    """The published warehouse's current candidates and subject keys, read directly."""

    def __init__(self, warehouse) -> None:
        with duckdb.connect(str(warehouse), read_only=True) as con:
            rows = con.execute("""SELECT kind, entity_id, field, value, resource, record_key,
                    in_conflict FROM gold.field_values WHERE valid_to IS NULL
                ORDER BY kind, entity_id, field, rank""").fetchall()
            keys = con.execute("""SELECT kind, CASE WHEN kind = 'person' THEN substr(unit, 3)
                    ELSE substr(unit, 6) END, entity_id FROM ident.registry
                WHERE (kind = 'person' AND unit LIKE '1:%')
                   OR (kind = 'enterprise' AND unit LIKE 'uscc:%')""").fetchall()
        self.candidates = defaultdict(list)  # (kind, entity, field) -> [(value, resource, key)]
        for kind, entity, field, value, resource, record_key, _ in rows:
            self.candidates[(kind, entity, field)].append((value, resource, record_key))
        self.entity_of = {(kind, key): entity for kind, key, entity in keys}
        self.subjects = self._pick(rows)

    def _pick(self, rows) -> dict[str, list[str]]:
        """Subject keys per kind: for every golden field, resource and rank at which a candidate
        from it stands, a few subjects (so winners from every source, and every source standing
        behind another, are asked about)."""
        key_of = {(kind, entity): key for (kind, key), entity in self.entity_of.items()}
        picked, seen, rank = defaultdict(list), defaultdict(int), 0
        previous = None
        for kind, entity, field, _, resource, _, _ in rows:
            rank = rank + 1 if (kind, entity, field) == previous else 1
            previous = (kind, entity, field)
            key = key_of.get((kind, entity))
            slot = (kind, field, resource, min(rank, 2))
            if key and seen[slot] < PER_SOURCE and key not in picked[kind]:
                seen[slot] += 1
                picked[kind].append(key)
        return picked

    def receivable(self, kind, key, field, consumer, purpose):
        """The candidates of the subject's field the department may receive, best first."""
        sources = receivable_sources(kind, field, consumer, purpose)
        return [c for c in self.candidates[(kind, self.entity_of[(kind, key)], field)]
                if c[1] in sources]


def test_every_prefill_releases_the_best_candidate_of_a_source_the_department_may_receive(served):
    url, keys, truth = served
    seen = defaultdict(int)
    with httpx.Client(timeout=30) as c:
        for consumer, purpose, t in itertools.product(keys, (p.code for p in CAT.purposes),
                                                      templates().values()):
            auth = {"Authorization": f"Bearer {keys[consumer]}"}
            pool = {role: truth.subjects[r.subject] for role, r in t.roles.items()}
            if purpose != t.code or consumer not in (t.lead, *t.cooperating):
                some = {role: keys_[0] for role, keys_ in pool.items()}
                r = c.post(f"{url}/v1/prefill", headers=auth, json={
                    "case_id": "REL-0", "purpose": purpose, "template": t.code,
                    "subjects": some})
                assert r.status_code == 403 and "roles" not in r.json(), (consumer, purpose, t)
                continue
            for i in range(max(len(p) for p in pool.values())):
                subjects = {role: p[(i + j) % len(p)] for j, (role, p) in enumerate(pool.items())}
                r = c.post(f"{url}/v1/prefill", headers=auth, json={
                    "case_id": f"REL-{i}", "purpose": purpose, "template": t.code,
                    "subjects": subjects})
                assert r.status_code == 200, r.text
                for role, answer in r.json()["roles"].items():
                    _check_role(truth, t, role, subjects[role], answer, consumer, purpose, seen)
    # the world put the classes that leaked before in front of the rule
    print(dict(seen))
    assert seen["unavailable while a narrower source holds a value"] > 0, dict(seen)
    assert seen["withheld"] > 0, dict(seen)
    assert {"PS_POP_BASIC", "CA_MARRIAGE", "CA_CREMATION", "CU_ENT_REG", "CA_SOCIAL_ORG"} <= {
        k.split(":", 1)[1] for k in seen if k.startswith("released:")}, dict(seen)


def _check_role(truth, template, role, key, answer, consumer, purpose, seen) -> None:
    kind = template.roles[role].subject
    fields = template.roles[role].fields
    expected_any = False
    for f in fields:
        env = answer["fields"][f.code]
        where = (consumer, purpose, template.code, role, key, f.code)
        if not receivable_sources(kind, f.golden, consumer, purpose):
            assert set(env) == {"status", "reason"} and env["status"] == "withheld", (where, env)
            seen["withheld"] += 1
            continue
        expected_any = True
        mine = truth.receivable(kind, key, f.golden, consumer, purpose)
        best_overall = truth.candidates[(kind, truth.entity_of[(kind, key)], f.golden)]
        if not mine or mine[0][0] in (None, ""):
            assert env == {"status": "unavailable"}, (where, env, mine)
            if not mine and best_overall:
                seen["unavailable while a narrower source holds a value"] += 1
            continue
        value, resource, record_key = mine[0]
        assert env["status"] == "available", (where, env, mine)
        assert (env["value"], env["source"]["resource"], env["source"]["record_key"]) == (
            value, resource, record_key), (where, env, mine)
        if env["conflict"]:  # a conflict is only shown between sources it may receive
            assert len({v for v, _, _ in mine}) > 1, (where, env, mine)
        if best_overall[0][1] != resource:
            seen["released from a source behind a narrower winner"] += 1
        seen[f"released:{resource}"] += 1
    if expected_any:
        assert answer["status"] == "found" and answer["entity_id"] == truth.entity_of[(kind, key)]
    else:
        assert answer["status"] == "withheld" and "entity_id" not in answer, answer
        seen["role withheld"] += 1


def test_every_check_is_judged_from_a_source_the_department_may_receive(served):
    url, keys, truth = served
    persons, enterprises = truth.subjects["person"], truth.subjects["enterprise"]
    items = []
    for i, p in enumerate(persons):
        other = persons[(i + 1) % len(persons)]
        spouse = _best_any(truth, "person", p, "spouse")
        if spouse and i % 2 == 0:  # half of them asked about their actual spouse, if known
            other = next((k for (kind, k), e in truth.entity_of.items()
                          if kind == "person" and e == spouse), other)
        division = (_best_any(truth, "person", p, "hukou_division") or "500103")[:4]
        items += [{"check": "alive", "subject": p},
                  {"check": "married_to", "subject": p, "other": other},
                  {"check": "hukou_in", "subject": p, "division": division}]
    items += [{"check": "dishonest_credit", "subject": e} for e in enterprises]
    answered = defaultdict(int)
    with httpx.Client(timeout=120) as c:
        for consumer, purpose in itertools.product(keys, (p.code for p in CAT.purposes)):
            r = c.post(f"{url}/v1/batch", headers={"Authorization": f"Bearer {keys[consumer]}"},
                       json={"case_id": f"CHK-{consumer}-{purpose}", "purpose": purpose,
                             "checks": items})
            assert r.status_code == 200, r.text
            lines = [httpx.Response(200, content=line).json()
                     for line in r.content.splitlines() if line]
            assert [a["index"] for a in lines] == list(range(len(items)))
            for item, a in zip(items, lines, strict=True):
                expected = _expected_check(truth, item, consumer, purpose)
                got = {k: a.get(k) for k in expected}
                assert got == expected, (consumer, purpose, item, a)
                assert ("source" in a) == ("source" in expected), (consumer, purpose, item, a)
                answered[a["status"]] += 1
    assert answered["answered"] and answered["withheld"], dict(answered)


def _best_any(truth, kind, key, field):
    found = truth.candidates[(kind, truth.entity_of[(kind, key)], field)]
    return found[0][0] if found else None


def _expected_check(truth, item, consumer, purpose) -> dict:
    """The answer the rule gives, judged from the best candidate the department may receive."""
    spec = checks()[item["check"]]
    kind = spec["subject"]
    if not receivable_sources(kind, spec["golden"], consumer, purpose):
        return {"status": "withheld"}
    mine = truth.receivable(kind, item["subject"], spec["golden"], consumer, purpose)
    value, resource = (mine[0][0], mine[0][1]) if mine else (None, None)
    if value in (None, ""):
        result = False if item["check"] == "married_to" else None
    elif item["check"] == "alive":
        result = value == "alive"
    elif item["check"] == "married_to":
        result = value == truth.entity_of.get(("person", item["other"]))
    elif item["check"] == "hukou_in":
        result = value.startswith(item["division"])
    else:
        result = value in spec["dishonest_levels"]
    out = {"status": "answered" if result is not None else "unavailable", "answer": result}
    if mine:
        out["source"] = {"provider": CAT.resource(resource).provider, "resource": resource}
    return out
