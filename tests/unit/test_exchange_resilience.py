"""The requester's protections against other nodes: the circuit breaker, the case memory that
forgets, and the national layer the exchange checks."""

import pytest

from pipelines.exchange.breaker import Breaker
from pipelines.exchange.case_memory import CaseMemory
from pipelines.exchange.errors import ExchangeRefused
from pipelines.exchange.national import check_national, national_layer


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_a_node_failing_three_times_in_a_row_is_left_alone_for_the_pause_then_tried_once():
    clock = Clock()
    b = Breaker(failures=3, pause_s=10, clock=clock)
    for _ in range(2):
        b.failed("510000")
    assert b.allows("510000")
    b.failed("510000")
    assert not b.allows("510000") and b.allows("440300")
    clock.t = 10.5
    assert b.allows("510000")  # the trial
    assert not b.allows("510000")  # only one while it is out
    b.failed("510000")
    clock.t = 15
    assert not b.allows("510000")
    clock.t = 21
    assert b.allows("510000")
    b.succeeded("510000")
    assert b.allows("510000") and b.allows("510000")


def test_a_success_between_failures_keeps_the_circuit_closed():
    b = Breaker(failures=3, pause_s=10, clock=Clock())
    for _ in range(5):
        b.failed("510000")
        b.succeeded("510000")
    assert b.allows("510000")


def test_the_case_memory_forgets_after_its_time_and_holds_a_bounded_number_of_cases():
    clock = Clock()
    m = CaseMemory(ttl_s=900, max_entries=3, clock=clock)
    m.put(("JYJ", "C1"), "answer 1")
    clock.t = 899
    assert m.get(("JYJ", "C1")) == "answer 1"
    clock.t = 901
    assert m.get(("JYJ", "C1")) is None and len(m) == 0
    for i in range(5):
        m.put(("JYJ", f"C{i}"), i)
    assert len(m) == 3 and m.get(("JYJ", "C0")) is None and m.get(("JYJ", "C4")) == 4


def test_the_national_layer_lets_through_only_its_departments_and_purposes():
    layer = national_layer()
    assert "JYJ" in layer["prefill/SCHOOL_ENROLL"].departments
    check_national("prefill/SCHOOL_ENROLL", "JYJ", "SCHOOL_ENROLL")
    for service, dept, purpose in (("prefill/SCHOOL_ENROLL", "SWW", "SCHOOL_ENROLL"),
                                   ("prefill/SCHOOL_ENROLL", "JYJ", "ANALYTICS"),
                                   ("prefill/ENT_CHANGE", "SCJGJ", "ENT_CHANGE")):
        with pytest.raises(ExchangeRefused) as e:
            check_national(service, dept, purpose)
        assert e.value.code == "not_entitled"


def test_what_two_nodes_saying_different_things_about_one_person_is_called():
    from pipelines.exchange.crosscheck import classify

    assert classify("alive", "alive") == "registered_in_two_nodes"
    assert classify("deceased", "alive") == classify("alive", "deceased") == \
        "dead_in_one_alive_in_other"
    for agreeing in (("alive", "moved_out"), ("moved_out", "alive"), ("deceased", "deceased"),
                     ("deceased", "moved_out"), (None, "alive")):
        assert classify(*agreeing) is None


def test_blank_optional_settings_copied_from_the_example_mean_unset(monkeypatch):
    from pipelines.settings import Settings

    for name in ("HUILIU_EXCHANGE_DIRECTORY", "HUILIU_DROP_ROOT", "HUILIU_TODAY"):
        monkeypatch.setenv(name, "")
    s = Settings()
    assert s.exchange_directory is None and s.drop_root is None and s.today is None
