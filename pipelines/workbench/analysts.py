"""Analysts: who may use the workbench, for which department, tiers and purposes.

Credentials are issued, rotated and revoked like consumers' (serving.credentials: scrypt hashes
only, `<analyst>.<key id>.<secret>`), in a file of their own; beside them each analyst's grant. A
grant is checked against the responsibility list when it is issued (the department must be a
consumer, every purpose one of the list's, the statistical tier needs ANALYTICS), and again at
every login by the tier plan: a grant never widens what the list allows."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

from pipelines.catalog.model import Catalog
from pipelines.serving.credentials import Credentials
from pipelines.workbench.tier_plan import ANALYTICS, KINDS, STATISTICAL

ANALYSTS_FILE = "analysts.sqlite"  # in <home>/workbench
_ID = re.compile(r"^[a-z][a-z0-9_-]{1,39}$")


class GrantError(ValueError):
    """An analyst or grant the list does not allow; the message says what would."""


@dataclass(frozen=True)
class Analyst:
    analyst: str
    department: str
    tiers: tuple[str, ...]
    purposes: tuple[str, ...]
    active: bool

    changed_at: str  # the grant or credentials last changed: sessions from before it end

    def may_use(self, tier: str, purpose: str) -> bool:
        """ANALYTICS is served by the statistical tier only, every other purpose by the
        identified tier only: statistics never come with names in clear."""
        return (self.active and tier in self.tiers and purpose in self.purposes
                and (tier == STATISTICAL) == (purpose == ANALYTICS))


class Analysts:
    def __init__(self, workbench_dir: Path) -> None:
        self.credentials = Credentials(workbench_dir / ANALYSTS_FILE)
        self.con = self.credentials.con
        self.con.execute("""CREATE TABLE IF NOT EXISTS analysts (analyst TEXT PRIMARY KEY,
            department TEXT NOT NULL, tiers TEXT NOT NULL, purposes TEXT NOT NULL,
            created_at TEXT NOT NULL, revoked_at TEXT, changed_at TEXT)""")
        columns = {r[1] for r in self.con.execute("PRAGMA table_info(analysts)")}
        if "changed_at" not in columns:  # a file made before sessions ended on grant changes
            self.con.execute("ALTER TABLE analysts ADD COLUMN changed_at TEXT")

    def issue(self, cat: Catalog, analyst: str, department: str, tiers: list[str],
              purposes: list[str]) -> str:
        """A new analyst (or a changed grant for a revoked or existing one) and a credential."""
        _check_grant(cat, analyst, department, tiers, purposes)
        now = _now()
        self.con.execute("""INSERT INTO analysts VALUES (?, ?, ?, ?, ?, NULL, ?)
            ON CONFLICT (analyst) DO UPDATE SET department = excluded.department,
            tiers = excluded.tiers, purposes = excluded.purposes, revoked_at = NULL,
            changed_at = excluded.changed_at""",
                         [analyst, department, ",".join(tiers), ",".join(purposes), now, now])
        return self.credentials.issue(analyst)

    def rotate(self, analyst: str) -> str:
        """A new credential; the old ones, and the sessions opened with them, end."""
        found = self.get(analyst)
        if found is None or not found.active:
            raise GrantError(f"no active analyst {analyst!r}: issue one first")
        self.con.execute("UPDATE analysts SET changed_at = ? WHERE analyst = ?", [_now(), analyst])
        return self.credentials.rotate(analyst)

    def revoke(self, analyst: str) -> int:
        now = _now()
        self.con.execute("UPDATE analysts SET revoked_at = ?, changed_at = ? WHERE analyst = ? "
                         "AND revoked_at IS NULL", [now, now, analyst])
        return self.credentials.revoke(analyst)

    def get(self, analyst: str) -> Analyst | None:
        row = self.con.execute(f"SELECT {_COLUMNS} FROM analysts WHERE analyst = ?",
                               [analyst]).fetchone()
        return _analyst(row) if row else None

    def authenticate(self, token: str) -> Analyst | None:
        """The analyst a credential belongs to (scrypt: ~50 ms), or None."""
        who = self.credentials.consumer_of(token)
        found = self.get(who) if who else None
        return found if found and found.active else None

    def all(self) -> list[Analyst]:
        rows = self.con.execute(f"SELECT {_COLUMNS} FROM analysts ORDER BY analyst").fetchall()
        return [_analyst(r) for r in rows]

    def identified_grants(self) -> set[tuple[str, str]]:
        """(department, purpose) of every active analyst's identified tier: built at publish."""
        return {(a.department, p) for a in self.all() for p in a.purposes
                if a.may_use("identified", p)}

    def close(self) -> None:
        self.con.close()


_COLUMNS = ("analyst, department, tiers, purposes, revoked_at IS NULL, "
            "coalesce(changed_at, created_at)")


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")  # comparable as text


def _analyst(row) -> Analyst:
    return Analyst(row[0], row[1], tuple(row[2].split(",")), tuple(row[3].split(",")),
                   bool(row[4]), row[5])


def _check_grant(cat: Catalog, analyst: str, department: str, tiers: list[str],
                 purposes: list[str]) -> None:
    if not _ID.match(analyst):
        raise GrantError(f"analyst id {analyst!r}: use 2-40 lower-case letters, digits, _ or -, "
                         "starting with a letter (e.g. zhang_wei)")
    consumers = {c.code for c in cat.consumers}
    if department not in consumers:
        raise GrantError(f"{department} is not a consumer of the responsibility list "
                         f"({', '.join(sorted(consumers))})")
    known = {p.code for p in cat.purposes}
    wrong = [p for p in purposes if p not in known]
    if wrong or not purposes:
        raise GrantError(f"purposes {wrong or '(none)'}: name purposes of the list "
                         f"({', '.join(sorted(known))})")
    if not tiers or any(t not in KINDS for t in tiers):
        raise GrantError(f"tiers {tiers}: name statistical and/or identified")
    if STATISTICAL in tiers and ANALYTICS not in purposes:
        raise GrantError(f"the statistical tier is for purpose {ANALYTICS}: add it to the purposes")
    if "identified" in tiers and not set(purposes) - {ANALYTICS}:
        raise GrantError(f"the identified tier is for purposes of named records, not {ANALYTICS} "
                         "(statistics are served pseudonymised): name such a purpose")
