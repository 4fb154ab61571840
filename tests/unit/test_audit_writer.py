"""The audit log's writer process: an entry is committed before its answer may leave; a writer
that dies fails only the answers it had not confirmed, and the next entry starts a new one."""

import asyncio
import os
import signal

import pytest

from pipelines.serving.audit import tampering
from pipelines.serving.audit_lines import parse_line, read_lines
from pipelines.serving.audit_writer import AuditWriter, encode_group, take_groups


@pytest.fixture(autouse=True)
def audit_key(monkeypatch, tmp_path):
    # the writer process reads them
    monkeypatch.setenv("HUILIU_AUDIT_KEY", "writer-test-audit-key-5e8d1c7a93b64f20")
    monkeypatch.setenv("HUILIU_AUDIT_ANCHOR", str(tmp_path / "audit.anchor"))


def entry(case_id: str, answer: bytes = b'{"ok":true}') -> dict:
    return {"consumer": "WJW", "purpose": "NEWBORN", "template": "NEWBORN", "case_id": case_id,
            "subjects": ["person:500103198001020113"], "released": ["mother.name"],
            "withheld": ["mother.hukou_address"], "answer": answer}


def cases_in(path) -> list[str]:
    return [parse_line(line)["case_id"] for _, line in read_lines(path)]


def test_every_entry_is_committed_when_its_append_returns(tmp_path):
    path = tmp_path / "audit.jsonl"

    async def main():
        writer = AuditWriter(path)
        committed = []

        async def one(i):
            await writer.append(**entry(f"C{i}", f'{{"n":{i}}}'.encode()))
            committed.append(f"C{i}" in cases_in(path))  # as another reader sees it then

        await asyncio.gather(*(one(i) for i in range(50)))
        await writer.aclose()
        return committed

    assert all(asyncio.run(main()))
    assert sorted(cases_in(path)) == sorted(f"C{i}" for i in range(50))
    assert tampering(path) == []


def test_a_writer_that_dies_fails_what_it_had_not_confirmed_and_a_new_one_takes_over(tmp_path):
    path = tmp_path / "audit.jsonl"

    async def main():
        writer = AuditWriter(path)
        await writer.append(**entry("before"))
        first = writer.proc
        os.kill(first.pid, signal.SIGSTOP)  # it receives the entry but never confirms it
        unconfirmed = asyncio.ensure_future(writer.append(**entry("lost")))
        await asyncio.sleep(0.2)
        assert not unconfirmed.done()
        os.kill(first.pid, signal.SIGKILL)
        with pytest.raises(RuntimeError, match="writer stopped"):
            await unconfirmed
        await writer.append(**entry("after"))  # a new writer, started for it
        assert writer.proc is not first and writer.proc.poll() is None
        await writer.aclose()
        return first

    first = asyncio.run(main())
    assert first.poll() is not None
    assert cases_in(path) == ["before", "after"]  # the killed writer had not committed "lost"
    assert tampering(path) == []


def test_a_log_that_cannot_be_opened_stops_the_service_with_the_reason(tmp_path):
    (tmp_path / "not-a-directory").write_text("")
    with pytest.raises(RuntimeError, match="did not start"):
        AuditWriter(tmp_path / "not-a-directory" / "audit.jsonl")


def test_a_group_arriving_in_pieces_is_read_whole_and_in_order():
    groups = [[entry("A"), entry("B", "答".encode())], [entry("C", b"")]]
    stream = b"".join(encode_group(g) for g in groups)
    buf, got = bytearray(), []
    for i in range(len(stream)):  # one byte at a time: any split a socket may make
        buf += stream[i:i + 1]
        got += take_groups(buf)
    assert got == groups and not buf
