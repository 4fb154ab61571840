"""Pairing the three logs of an exchange: complete and agreeing logs pair; a missing entry or a
differing digest on any side is named."""

import orjson

from pipelines.exchange.pairing import pair


def _line(seq: int, detail: dict) -> bytes:
    values = [seq, "2026-12-05T00:00:00+00:00", "c", "p", "t", "case", [], [], [], "d" * 64,
              orjson.dumps(detail).decode(), "0" * 64, "f" * 64]
    return orjson.dumps(values) + b"\n"


def _logs(tmp_path, requester=None, exchange=None, answerer=None):
    rid = "500000-abc"
    req = {"exchanges": [{"exchange": rid, "node": "510000", "request_digest": "r1",
                          "answer_digest": "a1", "outcome": "answered"}]}
    ex = {"exchange": rid, "sender": "500000", "receiver": "510000", "request_digest": "r1",
          "answer_digest": "a1", "outcome": "answered"}
    ans = {"exchange": rid, "requester": "500000", "request_digest": "r1",
           "answer_digest": "a1", "outcome": "answered"}
    paths = {}
    for name, detail in (("500000", requester if requester is not None else req),
                         ("exchange", exchange if exchange is not None else ex),
                         ("510000", answerer if answerer is not None else ans)):
        p = tmp_path / f"{name}.jsonl"
        p.write_bytes(_line(1, detail) if detail else b"")
        paths[name] = p
    return paths["exchange"], {"500000": paths["500000"], "510000": paths["510000"]}


def test_three_agreeing_logs_pair(tmp_path):
    assert pair(*_logs(tmp_path)) == (1, [])


def test_an_answer_digest_altered_on_one_side_is_named(tmp_path):
    altered = {"exchange": "500000-abc", "requester": "500000", "request_digest": "r1",
               "answer_digest": "XX", "outcome": "answered"}
    paired, problems = pair(*_logs(tmp_path, answerer=altered))
    assert paired == 0 and [p.problem for p in problems] == [
        "digests differ across the three logs"]


def test_an_exchange_missing_from_the_answerers_log_is_named_from_both_sides(tmp_path):
    paired, problems = pair(*_logs(tmp_path, answerer={}))
    assert paired == 0
    assert {p.problem for p in problems} == {
        "answered, but not in the answering node's log",
        "relayed as answered, but the answering node's log does not have it"}


def test_a_request_the_requester_never_logged_is_named(tmp_path):
    paired, problems = pair(*_logs(tmp_path, requester={}))
    assert [p.problem for p in problems] == [
        "relayed and answered, but the requester's log does not have it"]
