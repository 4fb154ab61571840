"""The pre-review rules as data: the shipped ones load and compile; a rule that does not compile,
names a field no template has, or a severity outside the list stops the load naming it; the
verdict never refuses, and an officer decides whatever the hub could not check or found
disputed."""

import pytest

from pipelines.prereview.review import APPROVE, CORRECT, OFFICER, verdict
from pipelines.prereview.rules import RuleError, load_rules, rules
from pipelines.serving.templates import templates


def test_the_shipped_rules_load_and_compile():
    r = rules()
    assert {x.id for x in r.claimed} >= {"CLAIM_NAME", "CLAIM_BIRTH_DATE", "CLAIM_HUKOU_DIVISION"}
    assert "SCHOOL_AGE" in {x.id for x in r.eligibility["SCHOOL_ENROLL"]}
    age = next(x for x in r.eligibility["SCHOOL_ENROLL"] if x.id == "SCHOOL_AGE")
    assert age.holds({"birth_date": "2020-01-15"}) and not age.holds({"birth_date": "2016-01-15"})


@pytest.mark.parametrize("rule, problem", [
    ("{id: X, field: name, severity: block, on_fail: correct, check: 'claimed ==', "
     "explain_zh: a, explain_en: b}", "does not compile"),
    ("{id: X, field: shoe_size, severity: block, on_fail: correct, check: 'true', "
     "explain_zh: a, explain_en: b}", "no template has a field"),
    ("{id: X, field: name, severity: fatal, on_fail: correct, check: 'true', "
     "explain_zh: a, explain_en: b}", "severity is one of"),
])
def test_a_broken_rule_stops_the_load_naming_it(tmp_path, rule, problem):
    path = tmp_path / "rules.yaml"
    path.write_text(f"claimed:\n  - {rule}\n", encoding="utf-8")
    with pytest.raises(RuleError) as e:
        load_rules(templates(), path)
    assert problem in str(e.value) and "X" in str(e.value)


def f(status, severity="block", on_fail="correct", **flags):
    return {"status": status, "severity": severity, "on_fail": on_fail, **flags}


def test_the_verdict_approves_only_when_every_check_passed_undisputed():
    assert verdict([f("pass"), f("pass", "warn")]) == APPROVE
    assert verdict([f("pass"), f("fail")]) == CORRECT
    assert verdict([f("pass"), f("fail", on_fail="officer")]) == OFFICER
    assert verdict([f("pass"), f("cannot_check")]) == OFFICER
    assert verdict([f("pass", disputed=True)]) == OFFICER
    assert verdict([f("pass", conflict=True)]) == OFFICER
    assert verdict([f("fail"), f("fail", on_fail="officer")]) == OFFICER
    assert verdict([f("cannot_check", "info")]) == APPROVE


def test_a_case_returned_and_resubmitted_is_open_for_the_officers_again(tmp_path):
    from pipelines.prereview.queue import Queue

    q = Queue(tmp_path / "q.sqlite")
    body = {"case_id": "C-1", "template": "SCHOOL_ENROLL", "verdict": "退回补正", "findings": []}
    q.add("JYJ", body)
    q.decide("JYJ", "C-1", "return", "张科员", "出生日期有误")
    assert q.items("JYJ") == []
    q.add("JYJ", body | {"verdict": "可秒批"})
    (again,) = q.items("JYJ")
    assert again["verdict"] == "可秒批" and again["decision"] is None
    assert q.items("MZJ") == []
