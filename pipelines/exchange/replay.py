"""Replays stopped: a message is accepted once, within a time window around its sending time.

Each (sender, nonce) seen is remembered until its window has passed; after that a replay is
refused as expired anyway, so nothing that could still be replayed is ever forgotten. When the
memory is full of live entries, new messages are refused (the sender retries) rather than an
entry being dropped early."""

from __future__ import annotations

import datetime as dt

from pipelines.exchange.errors import ExchangeRefused

WINDOW_S = 60.0
MAX_REMEMBERED = 1_000_000


def within_window(sent_at: str, now: dt.datetime, window_s: float) -> dt.datetime:
    """The time `sent_at` names, refused when it is not an aware ISO time or lies more than
    `window_s` from `now` either way (a clock far off, or a message kept and sent again)."""
    try:
        sent = dt.datetime.fromisoformat(sent_at)
    except (TypeError, ValueError):
        raise ExchangeRefused("malformed", f"time {sent_at!r} is not an ISO time") from None
    if sent.tzinfo is None:
        raise ExchangeRefused("malformed", f"time {sent_at!r} needs its time zone (UTC)")
    skew = abs((now - sent).total_seconds())
    if skew > window_s:
        raise ExchangeRefused("expired", f"stamped or sent {skew:.0f} s from now, outside the "
                              f"{window_s:.0f} s window: check the clock and resend")
    return sent


class ReplayGuard:
    def __init__(self, window_s: float = WINDOW_S, max_remembered: int = MAX_REMEMBERED) -> None:
        self.window_s, self.max_remembered = window_s, max_remembered
        self._seen: dict[tuple[str, str], float] = {}  # -> when it may be forgotten (epoch s)

    def check(self, sender: str, nonce: str, sent_at: str, now: dt.datetime) -> None:
        """Refuse (ExchangeRefused) a message outside the window or seen before; remember it."""
        sent = within_window(sent_at, now, self.window_s)
        key = (sender, nonce)
        epoch = now.timestamp()
        if key in self._seen and self._seen[key] > epoch:
            raise ExchangeRefused("replayed", f"{sender} sent nonce {nonce} before: a replay")
        if len(self._seen) >= self.max_remembered:
            self._seen = {k: until for k, until in self._seen.items() if until > epoch}
            if len(self._seen) >= self.max_remembered:
                raise ExchangeRefused("busy", "too many messages in the window: retry shortly")
        self._seen[key] = sent.timestamp() + 2 * self.window_s
