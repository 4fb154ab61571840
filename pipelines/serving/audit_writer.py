"""The audit log's writer process, and the service's group commit through it.

Writing the audit log in the service would cost its single event-loop core a large share of each
prefill (preparing the entry, chaining it, the writes and the indexing competing for the same
interpreter; measured in BENCHMARKS.md, Prefill service). So each service process starts a
writer process of its own, on the machine's other core, and hands it a few entries at a time
(SEND_EVERY, or what one event-loop turn has when fewer); each answer is sent only once the
writer has written its entry (an answer whose entry could not be written is not sent: its caller
gets a 500). Several service processes each have a writer and extend one chain (see AuditLog).

Protocol over a socket pair: a group is `>II` (meta length, answers length), the meta (JSON:
[[consumer, purpose, template, case_id, subjects, released, withheld, answer length], ...]) and
the answers' bytes; the writer answers each group, in order, with b"+" or b"-", `>I` length and
a message. The writer appends every group that has arrived in one write (see AuditLog).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import struct
import subprocess
import sys
from collections import deque
from pathlib import Path

import orjson

from pipelines.serving.children import start_module, wait_or_kill

log = logging.getLogger(__name__)

_GROUP = struct.Struct(">II")
_REPLY = struct.Struct(">cI")
READY = b"R"
START_TIMEOUT_S = 60
# entries sent at once at most: the writer appends whatever has arrived in one write, so
# sending a turn's entries in smaller messages costs a write each but lets the writer start on
# them while the loop is still answering the rest of the turn (with whole turns, ~13 entries,
# an entry waited 2.5 ms for its commit at the median and the loop sat idle meanwhile: 4 gave
# 18-29 % more answers a second than the log written in the loop, whole turns none)
SEND_EVERY = 4


def encode_group(items: list[dict]) -> bytes:
    # an entry with a `detail` (a prefill that asked other nodes) carries it as a ninth value
    meta = orjson.dumps([[i["consumer"], i["purpose"], i["template"], i["case_id"],
                          i["subjects"], i["released"], i["withheld"], len(i["answer"]),
                          *((i["detail"],) if i.get("detail") is not None else ())]
                         for i in items])
    answers = b"".join(i["answer"] for i in items)
    return _GROUP.pack(len(meta), len(answers)) + meta + answers


def take_groups(buf: bytearray) -> list[list[dict]]:
    """The complete groups at the start of `buf`, removed from it."""
    groups, at = [], 0
    while len(buf) - at >= _GROUP.size:
        meta_len, answers_len = _GROUP.unpack_from(buf, at)
        end = at + _GROUP.size + meta_len + answers_len
        if len(buf) < end:
            break
        meta = orjson.loads(bytes(buf[at + _GROUP.size:at + _GROUP.size + meta_len]))
        offset, items = at + _GROUP.size + meta_len, []
        for consumer, purpose, template, case_id, subjects, released, withheld, n, *detail in meta:
            items.append({"consumer": consumer, "purpose": purpose, "template": template,
                          "case_id": case_id, "subjects": subjects, "released": released,
                          "withheld": withheld, "answer": bytes(buf[offset:offset + n]),
                          **({"detail": detail[0]} if detail else {})})
            offset += n
        groups.append(items)
        at = end
    del buf[:at]
    return groups


def _reply(ok: bool, message: str = "") -> bytes:
    body = message.encode()
    return _REPLY.pack(b"+" if ok else b"-", len(body)) + body


def serve(sock: socket.socket, path: Path) -> int:
    """The writer process's loop: until the service closes its end."""
    from pipelines.serving.audit import AuditLog  # here: the service side does not need it

    try:
        audit = AuditLog(path)
    except Exception as e:  # noqa: BLE001 - told to the service, which refuses to start
        sock.sendall(b"-" + str(e).encode())
        return 1
    sock.sendall(READY)
    buf = bytearray()
    try:
        while True:
            try:  # everything that has arrived, so one commit covers it all
                while chunk := sock.recv(1 << 20, socket.MSG_DONTWAIT):
                    buf += chunk
            except BlockingIOError:
                pass
            groups = take_groups(buf)
            if not groups:
                chunk = sock.recv(1 << 20)  # wait for more
                if not chunk:
                    return 0  # the service closed its end: done
                buf += chunk
                continue
            try:
                audit.append_many([item for group in groups for item in group])
                reply = _reply(True) * len(groups)
            except Exception as e:
                log.exception("audit entries not written")
                reply = _reply(False, f"{type(e).__name__}: {e}") * len(groups)
            try:
                sock.sendall(reply)
            except (BrokenPipeError, ConnectionResetError):
                return 0  # the service stopped without waiting: everything is committed
    finally:
        audit.close()


class _Acks(asyncio.Protocol):
    def __init__(self, writer: AuditWriter) -> None:
        self.writer, self.buf = writer, bytearray()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        at = 0
        while len(self.buf) - at >= _REPLY.size:
            status, n = _REPLY.unpack_from(self.buf, at)
            if len(self.buf) - at - _REPLY.size < n:
                break
            message = bytes(self.buf[at + _REPLY.size:at + _REPLY.size + n]).decode()
            at += _REPLY.size + n
            self.writer.acknowledged(status == b"+", message)
        del self.buf[:at]

    def connection_lost(self, exc) -> None:
        self.writer.lost(exc)


class AuditWriter:
    """The service's side: `await append(...)` returns once the entry is committed; entries go
    to the writer process SEND_EVERY at a time, and the rest of an event-loop turn at its end."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.pending: list[tuple[dict, asyncio.Future]] = []
        self.in_flight: deque[list[asyncio.Future]] = deque()  # sent groups, oldest first
        self.transport: asyncio.Transport | None = None
        self.connecting: asyncio.Task | None = None
        self.sock: socket.socket | None = None  # started, not yet handed to the event loop
        self.proc: subprocess.Popen | None = None
        self.closing = False
        self.gone: asyncio.Future | None = None
        self._start()  # here, not in the first request: a log that cannot be opened stops it

    def _start(self) -> None:
        ours, theirs = socket.socketpair()
        self.proc = start_module(__name__, str(theirs.fileno()),
                                 str(self.path), pass_fds=[theirs.fileno()])
        theirs.close()
        ours.settimeout(START_TIMEOUT_S)
        try:
            first = ours.recv(1 << 16)
        except TimeoutError:
            first = b""
        if first != READY:
            ours.close()
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError("the audit log's writer did not start: "
                               f"{first[1:].decode(errors='replace') or 'no answer'}")
        ours.setblocking(False)
        self.sock = ours

    async def append(self, **item) -> None:
        """Committed when this returns; raises what the writer reported (the answer is then
        not sent)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.pending.append((item, future))
        if len(self.pending) == 1:  # the first of this turn schedules the send after the rest
            loop.call_soon(self._flush)
        elif len(self.pending) >= SEND_EVERY:
            self._flush()
        await future

    def _flush(self) -> None:
        pending, self.pending = self.pending, []
        if not pending:  # sent already: SEND_EVERY was reached after the turn's first
            return
        if self.transport is not None:
            self._send(pending)
            return
        if self.connecting is None:  # the first group, or the first since the writer stopped
            self.connecting = asyncio.get_running_loop().create_task(self._connect())
        self.connecting.add_done_callback(lambda task: self._send_once_connected(task, pending))

    async def _connect(self) -> None:
        try:
            if self.sock is None:
                log.error("the audit log's writer had stopped; starting a new one")
                self._start()
            sock, self.sock = self.sock, None
            loop = asyncio.get_running_loop()
            self.gone = loop.create_future()  # set when the connection ends
            self.transport, _ = await loop.create_unix_connection(lambda: _Acks(self), sock=sock)
        finally:
            self.connecting = None

    def _send_once_connected(self, task: asyncio.Task, pending) -> None:
        error = task.exception() if not task.cancelled() else RuntimeError("cancelled")
        if error is None and self.transport is not None:
            self._send(pending)
            return
        for _, future in pending:
            if not future.done():
                future.set_exception(error or RuntimeError("the audit log's writer stopped"))

    def _send(self, pending) -> None:
        self.in_flight.append([future for _, future in pending])
        self.transport.write(encode_group([item for item, _ in pending]))

    def acknowledged(self, ok: bool, message: str) -> None:
        for future in self.in_flight.popleft():
            if future.done():  # its caller went away
                continue
            if ok:
                future.set_result(None)
            else:
                future.set_exception(RuntimeError(f"audit log: {message}"))

    def lost(self, exc) -> None:
        """The writer went away: what it had not confirmed fails (whether or not it was
        written, its answer is not sent); the next entry starts a new writer."""
        self.transport = None
        if not self.gone.done():
            self.gone.set_result(None)
        if self.closing:
            return
        error = RuntimeError(f"the audit log's writer stopped ({exc or 'it closed'}); its "
                             "unconfirmed answers were not sent")
        while self.in_flight:
            for future in self.in_flight.popleft():
                if not future.done():
                    future.set_exception(error)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait()

    async def aclose(self) -> None:
        """Let the writer commit what it was sent, then stop it (the service's shutdown)."""
        self.closing = True
        if self.transport is not None:
            self.transport.close()  # sends what is buffered, then the end of the stream
            await self.gone
        await asyncio.get_running_loop().run_in_executor(None, self.close)

    def close(self) -> None:
        """Stop the writer once it has committed what it was sent (from outside the event loop:
        a writer connected to the loop is closed with `aclose`)."""
        self.closing = True
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.proc is not None:
            wait_or_kill(self.proc, 30, "the audit log's writer")


if __name__ == "__main__":
    # interrupted with the service (Ctrl-C reaches the whole process group) the writer keeps
    # going until the service has closed its end: nothing in flight is lost
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.INFO)
    # the upkeep thread indexes entries in Python: a short switch interval keeps it from holding
    # the GIL for the default 5 ms while a group waits to be written
    sys.setswitchinterval(0.0005)
    sys.exit(serve(socket.socket(fileno=int(sys.argv[1])), Path(sys.argv[2])))
