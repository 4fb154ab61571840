"""Analysts' sessions: a login states a purpose (and so a tier) and gets a random token, kept only
in the service's memory. A session ends after 30 idle minutes or 8 hours, on logout, and when the
analyst's grant or credentials change after it began (revoked, rotated, re-issued: checked at every
request by the service). At most MAX_PER_ANALYST sessions an analyst (the oldest ends first) and
MAX_SESSIONS in all."""

from __future__ import annotations

import datetime as dt
import secrets
import time
from dataclasses import dataclass, field

IDLE_S, LIFETIME_S = 30 * 60, 8 * 3600
MAX_SESSIONS, MAX_PER_ANALYST = 10_000, 20


@dataclass
class Session:
    token: str
    analyst: str
    department: str
    purpose: str
    tier: str
    started: float = field(default_factory=time.monotonic)
    seen: float = field(default_factory=time.monotonic)
    began_at: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(
        timespec="microseconds"))  # compared with Analyst.changed_at, written the same way

    def public(self) -> dict:
        return {"analyst": self.analyst, "department": self.department, "purpose": self.purpose,
                "tier": self.tier}


class Sessions:
    def __init__(self) -> None:
        self._by_token: dict[str, Session] = {}

    def start(self, analyst: str, department: str, purpose: str, tier: str) -> Session:
        self._expire()
        own = [s for s in self._by_token.values() if s.analyst == analyst]
        if len(own) >= MAX_PER_ANALYST:  # one analyst's logins cannot end others' sessions
            del self._by_token[min(own, key=lambda s: s.seen).token]
        elif len(self._by_token) >= MAX_SESSIONS:
            oldest = min(self._by_token.values(), key=lambda s: s.seen)
            del self._by_token[oldest.token]
        s = Session(secrets.token_urlsafe(32), analyst, department, purpose, tier)
        self._by_token[s.token] = s
        return s

    def get(self, token: str) -> Session | None:
        s = self._by_token.get(token)
        now = time.monotonic()
        if s is None or now - s.seen > IDLE_S or now - s.started > LIFETIME_S:
            self._by_token.pop(token, None)
            return None
        s.seen = now
        return s

    def end(self, token: str) -> None:
        self._by_token.pop(token, None)

    def _expire(self) -> None:
        now = time.monotonic()
        self._by_token = {t: s for t, s in self._by_token.items()
                          if now - s.seen <= IDLE_S and now - s.started <= LIFETIME_S}
