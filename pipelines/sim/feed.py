"""Change feeds and snapshots of the API resources.

One global, append-only log per resource holds every change record already serialised (orjson
bytes) with the division codes it relates to. A node's feed is the subsequence whose scope touches
the node; it is indexed lazily and extended as the log grows, so a page is a slice and a join of
ready-made bytes. Only the prefix up to `published` is visible: an advance appends a day's records
and publishes them at once, so readers never see half a day.

Snapshots keep references to the current-state bytes of every key (CZLX "I"), so a snapshot costs
one pointer per row and unchanged rows are shared between snapshots.
"""

from __future__ import annotations

import base64
import bisect
import threading
from dataclasses import dataclass, field

import orjson

from pipelines.sim.config import node_prefix


def dumps(obj) -> bytes:
    """orjson bytes with an exact-size buffer (orjson over-allocates ~4 KiB per result, which
    would multiply the memory of a stored feed by ten)."""
    return memoryview(orjson.dumps(obj)).tobytes()


class CursorError(ValueError):
    pass


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(orjson.dumps({"seq": seq})).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        pad = "=" * (-len(cursor) % 4)
        data = orjson.loads(base64.urlsafe_b64decode(cursor + pad))
        seq = data["seq"]
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
            raise ValueError
        return seq
    except Exception:  # noqa: BLE001 - any failure means the cursor is not one of ours
        raise CursorError(cursor) from None


@dataclass
class Snapshot:
    snapshot_id: str
    as_of: str
    log_pos: int                                  # global log position consistent with it
    rows: list[tuple[bytes, tuple[str, ...]]]     # (record bytes with CZLX "I", scope)
    _node_rows: dict[str, list[bytes]] = field(default_factory=dict)


@dataclass
class _NodeIndex:
    positions: list[int] = field(default_factory=list)
    scanned: int = 0


class ResourceFeed:
    def __init__(self, resource: str):
        self.resource = resource
        self.log: list[bytes] = []
        self.scopes: list[tuple[str, ...]] = []
        self.published = 0
        self.state: dict[tuple, tuple[bytes, tuple[str, ...]]] = {}
        # rows that only ever accumulate (CA_SUBSISTENCE months): no key dictionary needed
        self.extra: list[tuple[bytes, tuple[str, ...]]] = []
        self.snapshots: list[Snapshot] = []
        self._nodes: dict[str, _NodeIndex] = {}
        self._lock = threading.Lock()

    def append(self, rec: dict, scope: tuple[str, ...], key: tuple, state_rec: dict | None,
               delete: bool = False) -> int:
        """Append one change record; `state_rec` (the clean record) updates the current state.
        Returns the global log position."""
        self.log.append(dumps(rec))
        self.scopes.append(scope)
        if delete:
            self.state.pop(key, None)
        elif state_rec is not None:
            self.state[key] = (dumps({**state_rec, "CZLX": "I"}), scope)
        return len(self.log) - 1

    def put_state(self, key: tuple, rec: dict, scope: tuple[str, ...]) -> None:
        self.state[key] = (dumps({**rec, "CZLX": "I"}), scope)

    def add_extra(self, rec: dict, scope: tuple[str, ...]) -> None:
        self.extra.append((dumps({**rec, "CZLX": "I"}), scope))

    def publish(self) -> None:
        self.published = len(self.log)

    def take_snapshot(self, snapshot_id: str, as_of: str) -> None:
        rows = list(self.state.values())
        rows.extend(self.extra)
        self.snapshots.append(Snapshot(snapshot_id, as_of, self.published, rows))

    def node_positions(self, node: str) -> list[int]:
        """Global log positions of the node's published records, in order (its feed)."""
        with self._lock:
            idx = self._nodes.setdefault(node, _NodeIndex())
            end = self.published
            if idx.scanned < end:
                p = node_prefix(node)
                scopes = self.scopes
                idx.positions.extend(i for i in range(idx.scanned, end)
                                     if any(s.startswith(p) for s in scopes[i]))
                idx.scanned = end
            return idx.positions

    def node_length(self, node: str) -> int:
        return len(self.node_positions(node))

    def node_seq_of(self, node: str, log_pos: int) -> int:
        """Node feed position corresponding to a global log position."""
        return bisect.bisect_left(self.node_positions(node), log_pos)

    def page(self, node: str, seq: int, limit: int) -> tuple[list[bytes], int, bool]:
        pos = self.node_positions(node)
        end = min(seq + limit, len(pos))
        log = self.log
        recs = [log[i] for i in pos[seq:end]]
        return recs, max(end, seq), end < len(pos)

    def snapshot_rows(self, node: str, snap: Snapshot) -> list[bytes]:
        with self._lock:
            rows = snap._node_rows.get(node)
            if rows is None:
                p = node_prefix(node)
                rows = [b for b, scope in snap.rows if any(s.startswith(p) for s in scope)]
                snap._node_rows[node] = rows
            return rows


def page_body(resource: str, recs: list[bytes], next_seq: int, has_more: bool) -> bytes:
    return b"".join((b'{"resource":', orjson.dumps(resource), b',"records":[', b",".join(recs),
                     b'],"next_cursor":', orjson.dumps(encode_cursor(next_seq)),
                     b',"has_more":', b"true" if has_more else b"false", b"}"))
