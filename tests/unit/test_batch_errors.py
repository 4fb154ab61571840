"""Backflow failures carry their evidence as fields and say by their type what the next run does."""

import pytest

from pipelines.backflow.api_client import ApiError, PlatformUnreachable
from pipelines.backflow.api_records import parse_records
from pipelines.backflow.errors import TerminalFailure, TransientFailure
from pipelines.backflow.parsed import BatchRejected
from pipelines.catalog.model import catalog

pytestmark = pytest.mark.unit

POP = catalog().resource("PS_POP_BASIC")


def test_a_rejection_declares_its_evidence_with_empty_defaults():
    e = BatchRejected("checksum_mismatch", "part-0001.csv.gz sha256 differs")
    assert (e.code, e.batch_id, e.drift, e.contract_results) == ("checksum_mismatch", None, [], [])
    assert str(e) == "[checksum_mismatch] part-0001.csv.gz sha256 differs"
    rows = [["PS_POP_BASIC", "b1", "R1"]]
    e = BatchRejected("contract_threshold", "too many fail", batch_id="b1", contract_results=rows)
    assert (e.batch_id, e.contract_results, e.message) == ("b1", rows, "too many fail")


def test_a_missing_declared_column_rejects_the_api_batch_naming_it_and_the_drift():
    record = {f.code: "x" for f in POP.stored_fields[1:]} | {"CZLX": "I", "GXSJ": "x"}
    with pytest.raises(BatchRejected) as e:
        parse_records(POP, "chg-00000007", "incremental", [("page-00001", [record])])
    assert e.value.code == "schema_drift" and e.value.batch_id == "chg-00000007"
    assert [(d.kind, d.field) for d in e.value.drift] == [("missing", POP.stored_fields[0].code)]


def test_rejections_are_terminal_and_platform_failures_transient():
    # runs.py records a terminal failure against its batch; a transient one only fails the run
    assert issubclass(BatchRejected, TerminalFailure)
    assert not issubclass(BatchRejected, TransientFailure)
    for cls in (ApiError, PlatformUnreachable):
        assert issubclass(cls, TransientFailure) and not issubclass(cls, TerminalFailure)
