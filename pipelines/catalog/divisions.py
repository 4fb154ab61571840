"""Versioned GB/T 2260 division codes, read from catalogs/divisions.csv.

The table is built from published lists by `pipelines.catalog.divisions_build` (see
catalogs/divisions.SOURCE.md); this module only reads it, with the standard library plus numpy for
the vectorised check. One row is one (code, name) period: a code is valid at date d when some row
of it has valid_from <= d < valid_to (empty valid_to: still valid). Dates are the as-of dates of the
lists, so a change is known to within the gap between two lists (monthly 2015-2018, yearly before;
nothing between 2019-04 and 2025-12-31).

    table = DivisionTable.load()
    table.is_valid_at("110228", date(2014, 1, 1))      # True  (密云县)
    table.current_code("110228")                       # "110118" (密云区)
    table.valid_at_mask(codes, dates)                  # numpy bool array; 1M rows in ~0.5 s
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipelines import paths

DEFAULT_PATH = paths.CATALOGS / "divisions.csv"
_FAR_FUTURE = dt.date(9999, 12, 31)


@dataclass(frozen=True)
class DivisionRow:
    code: str
    name: str
    level: str  # province | prefecture | county
    valid_from: dt.date
    valid_to: dt.date | None  # None: still valid
    successor: str | None
    source: str

    def valid_at(self, d: dt.date) -> bool:
        return self.valid_from <= d and (self.valid_to is None or d < self.valid_to)


def _as_date(d: dt.date | dt.datetime | str) -> dt.date:
    if isinstance(d, dt.datetime):
        return d.date()
    if isinstance(d, dt.date):
        return d
    if isinstance(d, str):
        return dt.date.fromisoformat(d[:10])
    raise TypeError(f"expected a date, got {d!r}")


class DivisionTable:
    """All periods of all codes. Use `DivisionTable.load()`; it reads each file once per process."""

    def __init__(self, rows: list[DivisionRow]):
        self._rows: dict[str, tuple[DivisionRow, ...]] = {}
        for r in sorted(rows, key=lambda r: (r.code, r.valid_from)):
            self._rows.setdefault(r.code, ())
            self._rows[r.code] += (r,)
        self._build_intervals()

    # --- loading ----------------------------------------------------------------------------------

    @classmethod
    def load(cls, path: Path | str = DEFAULT_PATH) -> DivisionTable:
        return _load_cached(str(Path(path).resolve()))

    @classmethod
    def from_csv(cls, path: Path | str) -> DivisionTable:
        rows = []
        with open(path, encoding="utf-8", newline="") as fh:
            for rec in csv.DictReader(fh):
                rows.append(DivisionRow(
                    code=rec["code"],
                    name=rec["name"],
                    level=rec["level"],
                    valid_from=dt.date.fromisoformat(rec["valid_from"]),
                    valid_to=dt.date.fromisoformat(rec["valid_to"]) if rec["valid_to"] else None,
                    successor=rec["successor"] or None,
                    source=rec["source"],
                ))
        return cls(rows)

    def _build_intervals(self) -> None:
        """Per code, its validity merged into disjoint intervals, as padded numpy arrays
        (codes sorted) for `valid_at_mask`."""
        merged: dict[str, list[list[dt.date]]] = {}
        for code, rows in self._rows.items():
            ivs: list[list[dt.date]] = []
            for r in rows:
                end = r.valid_to or _FAR_FUTURE
                if ivs and r.valid_from <= ivs[-1][1]:
                    ivs[-1][1] = max(ivs[-1][1], end)
                else:
                    ivs.append([r.valid_from, end])
            merged[code] = ivs
        self._intervals = merged
        width = max((len(v) for v in merged.values()), default=1)
        codes = sorted(merged)
        self._codes = np.array(codes, dtype="U6") if codes else np.array([], dtype="U6")
        start = np.full((len(codes), width), np.datetime64("NaT"), dtype="datetime64[D]")
        stop = start.copy()
        for i, c in enumerate(codes):
            for j, (a, b) in enumerate(merged[c]):
                start[i, j], stop[i, j] = np.datetime64(a, "D"), np.datetime64(b, "D")
        self._start, self._stop = start, stop

    # --- scalar look-ups --------------------------------------------------------------------------

    def codes(self) -> list[str]:
        return sorted(self._rows)

    def rows(self, code: str) -> tuple[DivisionRow, ...]:
        return self._rows.get(code, ())

    def is_known(self, code: str) -> bool:
        """Listed at some time by some published list."""
        return code in self._rows

    def is_valid_at(self, code: str, date: dt.date | dt.datetime | str) -> bool:
        d = _as_date(date)
        return any(a <= d < b for a, b in self._intervals.get(code, ()))

    def row_at(self, code: str, date: dt.date | dt.datetime | str) -> DivisionRow | None:
        d = _as_date(date)
        for r in self._rows.get(code, ()):
            if r.valid_at(d):
                return r
        return None

    def name(self, code: str, at: dt.date | dt.datetime | str | None = None) -> str | None:
        """The name at `at`; without `at`, the latest name. None if unknown / not valid then."""
        if at is None:
            rows = self._rows.get(code)
            return rows[-1].name if rows else None
        r = self.row_at(code, at)
        return r.name if r else None

    def successor(self, code: str) -> str | None:
        """The code that replaced `code` when it last disappeared; None if still valid/unknown."""
        rows = self._rows.get(code)
        if not rows or rows[-1].valid_to is None:
            return None
        return rows[-1].successor

    def current_code(self, code: str) -> str:
        """Follow successors to the end of the chain. Returns `code` itself when it is still valid,
        unknown, or retired without a known successor (check `is_valid_at` if that matters)."""
        seen = {code}
        while (nxt := self.successor(code)) is not None and nxt not in seen:
            seen.add(nxt)
            code = nxt
        return code

    @staticmethod
    def province(code: str) -> str:
        """The province-level code: '500116' -> '500000'."""
        return code[:2] + "0000"

    def counties_in(self, prefix: str, at: dt.date | dt.datetime | str | None = None) -> list[str]:
        """County-level codes starting with `prefix` valid at `at` (default: today), sorted."""
        d = _as_date(at) if at is not None else dt.date.today()
        return [c for c, rows in self._rows.items()
                if c.startswith(prefix) and rows[0].level == "county" and self.is_valid_at(c, d)]

    def __len__(self) -> int:
        return sum(len(r) for r in self._rows.values())

    # --- vectorised -------------------------------------------------------------------------------

    def valid_at_mask(self, codes: Any, dates: Any) -> np.ndarray:
        """Element-wise `is_valid_at` for arrays (numpy, pyarrow, pandas, lists) of codes and dates.
        Nulls (None, NaT) give False."""
        c = _to_str_array(codes)
        d = _to_date_array(dates)
        if c.shape != d.shape:
            raise ValueError(f"codes and dates differ in length: {c.shape} vs {d.shape}")
        if len(self._codes) == 0 or len(c) == 0:
            return np.zeros(len(c), dtype=bool)
        idx = np.searchsorted(self._codes, c)
        idx = np.minimum(idx, len(self._codes) - 1)
        found = self._codes[idx] == c
        start, stop = self._start[idx], self._stop[idx]  # (n, width); NaT padding compares False
        inside = (start <= d[:, None]) & (d[:, None] < stop)
        return found & inside.any(axis=1)


def _to_str_array(values: Any) -> np.ndarray:
    if hasattr(values, "to_numpy") and not isinstance(values, np.ndarray):
        try:
            values = values.to_numpy(zero_copy_only=False)  # pyarrow
        except TypeError:
            values = values.to_numpy()  # pandas
    arr = np.asarray(values)
    if arr.dtype.kind == "U":
        return arr
    arr = arr.astype(object)
    out = np.empty(arr.shape, dtype="U8")  # a null/odd value becomes "" and never matches
    ok = np.array([isinstance(v, str) for v in arr], dtype=bool) if arr.size else np.zeros(0, bool)
    if ok.any():
        longest = max(len(v) for v in arr[ok])
        out = out.astype(f"U{max(longest, 1)}")
        out[ok] = arr[ok]
    return out


def _to_date_array(values: Any) -> np.ndarray:
    if hasattr(values, "to_numpy") and not isinstance(values, np.ndarray):
        try:
            values = values.to_numpy(zero_copy_only=False)
        except TypeError:
            values = values.to_numpy()
    arr = np.asarray(values)
    if arr.dtype.kind == "M":
        return arr.astype("datetime64[D]")
    if arr.dtype == object:
        return np.array([_one_date(v) for v in arr], dtype="datetime64[D]")
    return arr.astype("datetime64[D]")  # ISO strings


def _one_date(v: Any) -> np.datetime64:
    if v is None or v != v:  # None, NaN, NaT
        return np.datetime64("NaT")
    if isinstance(v, str):
        return np.datetime64(v[:10], "D")
    if isinstance(v, dt.datetime):
        v = v.date()
    return np.datetime64(v, "D")


@functools.cache
def _load_cached(path: str) -> DivisionTable:
    return DivisionTable.from_csv(path)
