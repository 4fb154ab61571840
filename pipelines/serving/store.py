"""The serving store: the published golden records in a read-only LMDB file, built per snapshot.

A prefill needs a lookup per subject of the case, under a p99 of 20 ms at 32 connections. LMDB
(a memory-mapped B+tree made for read-mostly key lookups) answers one in ~2 µs from Python, and
its pages are the OS's file cache, shared by the service's workers, not memory of each process
(DuckDB and SQLite, measured against it: BENCHMARKS.md, Prefill service). Each published
snapshot is exported once into `<home>/serving/store-<stamp>.lmdb` and `<home>/serving/
current.lmdb` is switched to it atomically (a symlink rename). The service opens and warms the new file in a thread and switches
between requests; the old file stays readable (the newest three are kept).
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
from pathlib import Path

import duckdb
import lmdb
import orjson

KEEP = 3  # store files kept (the newest), so a reader holding an older one keeps working
CURRENT = "current.lmdb"  # the link to the store the service answers from
MAP_SIZE = 1 << 40  # address space reserved for a store being built: the file grows as written
FORMAT = 5  # bumped when the layout below changes; the service refuses a store it cannot read

# One entry per subject key, b"<kind>:<key>" -> b"<entity id>\0<record>", holding its entity's
# golden fields as a compact JSON record, so a subject costs one B+tree descent. An
# entity known by several keys (rare) has its record once per key. A second table holds `meta`.
# Every current candidate of a field is kept, best first: a consumer receives the best one among
# the sources the list shares with it (entitlement.py), which may not be the golden value.
# record = {"src": [[provider, resource, batch_id, record_key, as_of], ...],
#           "f": {field: [[value, src index, confidence, disputed, in_conflict], ...], ...}}
# (a record's provenance is usually shared by several of its fields: stored once)
_GOLDEN = """
    SELECT entity_id, field, value, provider, resource, batch_id, record_key,
           CAST(as_of AS VARCHAR) AS as_of, confidence, disputed, in_conflict
    FROM gold.field_values WHERE valid_to IS NULL ORDER BY entity_id, field, rank"""

_EMPTY = orjson.dumps({"src": [], "f": {}})

_SUBJECTS = """
    SELECT kind, CASE WHEN kind = 'person' THEN substr(unit, 3) ELSE substr(unit, 6) END AS key,
           entity_id
    FROM ident.registry WHERE (kind = 'person' AND unit LIKE '1:%')
       OR (kind = 'enterprise' AND unit LIKE 'uscc:%')
    ORDER BY entity_id"""


def build_store(warehouse: Path, serving_dir: Path) -> Path:
    """Export subjects and golden values from a (published) DuckDB file; switch `current`."""
    serving_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = serving_dir / f"store-{stamp}.lmdb"
    tmp = path.with_suffix(".building")
    scratch = path.with_suffix(".scratch")
    # rows arrive in entity order; written to a scratch SQLite file first, then read back in key
    # order (LMDB appends keys given in order: its pages packed, no page split)
    sort = sqlite3.connect(scratch)
    try:
        sort.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; CREATE TABLE rows "
                           "(kind TEXT, key TEXT, entity_id TEXT, record BLOB);")
        _export(warehouse, sort)
        _write_lmdb(tmp, sort, stamp, warehouse)
    except BaseException:
        tmp.unlink(missing_ok=True)  # nothing half-built is left to be mistaken for a store
        raise
    finally:
        sort.close()
        scratch.unlink(missing_ok=True)
    os.replace(tmp, path)
    link = serving_dir / CURRENT
    staging = serving_dir / f"{CURRENT}.new"
    staging.unlink(missing_ok=True)
    staging.symlink_to(path.name)
    os.replace(staging, link)  # atomic: a reader sees the old store or the new one
    for old in sorted(serving_dir.glob("store-*.lmdb"))[:-KEEP]:
        old.unlink()
    return path


def _export(warehouse: Path, sort: sqlite3.Connection) -> None:
    """(kind, key, entity_id, record) of every subject key into the scratch table."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        con.execute("SET enable_progress_bar = false")
        # two streams read side by side: each on its own cursor (one open result a connection)
        records = _records(con.sql(_GOLDEN).to_arrow_reader(200_000))
        subjects = (row for batch in con.cursor().sql(_SUBJECTS).to_arrow_reader(200_000)
                    for row in zip(*(c.to_pylist() for c in batch.columns), strict=True))
        rows = []
        for row in _merge(subjects, records):
            rows.append(row)
            if len(rows) >= 50_000:
                sort.executemany("INSERT INTO rows VALUES (?, ?, ?, ?)", rows)
                rows.clear()
        sort.executemany("INSERT INTO rows VALUES (?, ?, ?, ?)", rows)
    sort.commit()


def _write_lmdb(tmp: Path, sort: sqlite3.Connection, stamp: str, warehouse: Path) -> None:
    """The scratch rows, in key order, and the meta into a new LMDB file."""
    env = lmdb.open(str(tmp), subdir=False, map_size=MAP_SIZE, max_dbs=2, lock=False,
                    sync=False, metasync=False)
    try:
        with env.begin(write=True) as txn:
            entries = ((f"{kind}:{key}".encode(), entity_id.encode() + b"\0" + record)
                       for kind, key, entity_id, record in
                       sort.execute("SELECT * FROM rows ORDER BY kind, key"))
            consumed, added = txn.cursor(db=env.open_db(b"subjects", txn=txn)).putmulti(
                entries, append=True)
            if added != consumed:
                raise RuntimeError(f"{consumed - added} subject keys repeated or out of order")
            meta = env.open_db(b"meta", txn=txn)
            for key, value in (("built_at", stamp), ("warehouse", str(warehouse)),
                               ("format", str(FORMAT))):
                txn.put(key.encode(), value.encode(), db=meta)
        env.sync(True)
    finally:
        env.close()


def _records(reader):
    """Fold the field rows (ordered by entity) into (entity_id, record), in entity order."""
    current, src, fields = None, {}, {}
    for batch in reader:
        for (e, field, value, provider, resource, batch_id, record_key, as_of, confidence,
             disputed, in_conflict) in zip(*(c.to_pylist() for c in batch.columns), strict=True):
            if e != current:
                if current is not None:
                    yield current, orjson.dumps({"src": list(src), "f": fields})
                current, src, fields = e, {}, {}
            si = src.setdefault((provider, resource, batch_id, record_key, as_of), len(src))
            fields.setdefault(field, []).append(
                (value, si, confidence, bool(disputed), bool(in_conflict)))
    if current is not None:
        yield current, orjson.dumps({"src": list(src), "f": fields})


def _merge(subjects, records):
    """(kind, key, entity_id, record) for every subject key; both inputs in entity order. A known
    subject without current golden values is still known: its fields are unavailable."""
    record = next(records, None)
    for kind, key, entity_id in subjects:
        while record is not None and record[0] < entity_id:
            record = next(records, None)
        found = record is not None and record[0] == entity_id
        yield kind, key, entity_id, record[1] if found else _EMPTY


UNAVAILABLE = {"status": "unavailable"}  # shared by every answer: never modified


class Entity:
    """One subject's entity and its golden fields' candidates, as the service answers them."""

    __slots__ = ("_fields", "_src", "entity_id")

    def __init__(self, entity_id: str, record: bytes) -> None:
        self.entity_id = entity_id
        r = orjson.loads(record)
        self._fields, self._src = r["f"], r["src"]

    def _best(self, name: str, resources: frozenset[str]) -> tuple[list, list] | None:
        """(candidate, its source) of the best candidate from one of `resources`, or None."""
        src = self._src
        for candidate in self._fields.get(name, ()):
            source = src[candidate[1]]
            if source[1] in resources:
                return candidate, source
        return None

    def _conflict(self, name: str, resources: frozenset[str], value) -> bool:
        """A field in an open conflict shows it only when the caller's own sources disagree:
        a conflict with a source it may not receive would disclose that source."""
        src = self._src
        return any(src[c[1]][1] in resources and c[0] != value for c in self._fields[name])

    def field(self, name: str, resources: frozenset[str]) -> dict | None:
        """The best candidate from `resources`: {value, provider, resource, batch_id, record_key,
        as_of, confidence, disputed, in_conflict}, or None when none of them holds one."""
        best = self._best(name, resources)
        if best is None:
            return None
        (value, _, confidence, disputed, in_conflict), source = best
        provider, resource, batch_id, record_key, as_of = source
        return {"value": value, "provider": provider, "resource": resource,
                "batch_id": batch_id, "record_key": record_key, "as_of": as_of,
                "confidence": confidence, "disputed": disputed,
                "in_conflict": in_conflict and self._conflict(name, resources, value)}

    def envelopes(self, plan: list[tuple]) -> dict[str, dict]:
        """A role's form: {field code: envelope} for plan entries (code, golden field, the
        withheld envelope or None, the sources it may be released from). One loop in one frame:
        it runs for every field of every prefill."""
        fields, src = self._fields, self._src
        out = {}
        for code, golden, withheld, resources in plan:
            if withheld is not None:
                out[code] = withheld
                continue
            for f in fields.get(golden, ()):
                s = src[f[1]]
                if s[1] in resources:
                    break
            else:
                out[code] = UNAVAILABLE
                continue
            if f[0] is None or f[0] == "":
                out[code] = UNAVAILABLE
            else:
                out[code] = {"status": "available", "value": f[0],
                             "source": {"provider": s[0], "resource": s[1], "batch": s[2],
                                        "record_key": s[3]},
                             "as_of": s[4], "match_confidence": f[2], "disputed": f[3],
                             "conflict": f[4] and self._conflict(golden, resources, f[0])}
        return out


class Store:
    """Read side. The file is immutable once built, so one read transaction serves the process
    (without LMDB's lock file: nothing writes it)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path).resolve()
        try:
            self.env = lmdb.open(str(self.path), subdir=False, readonly=True, lock=False,
                                 max_dbs=2, create=False)
        except lmdb.Error as e:
            raise RuntimeError(f"{self.path.name} is not a serving store ({e}); rebuild it with "
                               "`huiliu serving build`") from None
        try:
            subjects = self.env.open_db(b"subjects", create=False)
            fmt = self.env.begin(db=self.env.open_db(b"meta", create=False)).get(b"format")
        except lmdb.Error as e:
            self.env.close()
            raise RuntimeError(f"{self.path.name} is not a serving store ({e}); rebuild it with "
                               "`huiliu serving build`") from None
        if fmt is None or not fmt.isdigit() or int(fmt) != FORMAT:
            self.env.close()
            raise RuntimeError(f"{self.path.name} is a serving store of another format; rebuild "
                               "it with `huiliu serving build`")
        self.txn = self.env.begin(db=subjects)

    def warm(self) -> None:
        """Read the file once, so requests find its pages in the OS's cache rather than on disk
        (in 1 MiB reads: each releases the GIL, so a store warmed beside a serving one holds the
        event loop up for microseconds at a time)."""
        buf = bytearray(1 << 20)
        with open(self.path, "rb", buffering=0) as f:
            while f.readinto(buf):
                pass

    def entity(self, kind: str, key: str) -> Entity | None:
        """The person (citizen ID) or enterprise (USCC) with this key, or None."""
        return self.entities(kind, [key]).get(key)

    def entities(self, kind: str, keys: list[str]) -> dict[str, Entity]:
        """Subjects of one kind in one query (a case's few); unknown keys are absent."""
        return {key: Entity(entity_id, record)
                for key, entity_id, record in self._rows(kind, keys)}

    def field_of_many(self, kind: str, keys: list[str], field: str,
                      resources: frozenset[str]) -> dict[str, tuple]:
        """{key: (entity_id, field dict or None)}: one golden field of many subjects, from the
        given sources (what a batch of checks needs). Each record is dropped once its field is
        read: holding a chunk's parsed records at once made the collector walk them (1M checks
        38 -> 54 s)."""
        return {key: (entity_id, Entity(entity_id, record).field(field, resources))
                for key, entity_id, record in self._rows(kind, keys)}

    def _rows(self, kind: str, keys: list[str]) -> list[tuple[str, str, bytes]]:
        """(key, entity_id, record) of the known keys."""
        get, prefix, rows = self.txn.get, f"{kind}:", []
        for key in keys:
            found = get((prefix + key).encode())
            if found is not None:
                entity_id, _, record = found.partition(b"\0")
                rows.append((key, entity_id.decode(), record))
        return rows

    def keys(self, kind: str) -> list[str]:
        """Every key of a kind (benchmarks and tests pick subjects from it)."""
        prefix = f"{kind}:".encode()
        cursor = self.txn.cursor()
        if not cursor.set_range(prefix):
            return []
        out = []
        for key in cursor.iternext(values=False):
            if not key.startswith(prefix):
                break
            out.append(key[len(prefix):].decode())
        return out

    def close(self) -> None:
        self.env.close()
