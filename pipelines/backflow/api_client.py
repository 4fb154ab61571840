"""HTTP client for the national platform's change-feed API.

Client-credential token (refreshed when it expires or the server says it is invalid), retries with
exponential backoff on 5xx and dropped connections, and Retry-After honoured on 429. Returns frozen
dataclasses, not dicts.

Deadlines bound every wait: a connect timeout, a read timeout, few retries of a refused or silent
platform (a dropped connection is retried more: it is what a busy gateway does). A platform found
unreachable is not asked again by this process for a short while, so a run with several API
resources fails each of them in seconds instead of waiting out every timeout again.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import orjson
import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError, ReadTimeoutError
from urllib3.util.retry import Retry

from pipelines.backflow.errors import TransientFailure

log = logging.getLogger(__name__)


class ApiError(TransientFailure):
    """The API refused or kept failing. The message says what to check.

    Transient for the data: no batch is judged by it, and the next run repeats the request from
    the kept cursor (a refused credential needs the operator first; the message says so).
    """


class PlatformUnreachable(ApiError):
    """No answer from the platform: refused, timed out, or the connection kept dropping."""


UNREACHABLE_COOLDOWN_S = 60.0
_unreachable: dict[str, tuple[float, str]] = {}  # base URL -> (until, why): per process


@dataclass(frozen=True)
class Page:
    records: list[dict]
    next_cursor: str
    has_more: bool


@dataclass(frozen=True)
class Snapshot:
    snapshot_id: str
    as_of: str
    rows: int
    feed_cursor: str


class PlatformClient:
    def __init__(self, base_url: str, client_id: str, client_secret: str, *,
                 timeout: float = 30.0, connect_timeout: float = 5.0, max_retries: int = 6,
                 backoff: float = 0.5):
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self._secret = client_secret
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self._token: str | None = None
        self._token_expiry = 0.0
        self.session = requests.Session()
        # urllib3 retries 5xx/429 (sleeping Retry-After when given), a refused connect twice and a
        # silent read once; _send retries dropped connections further.
        retry = Retry(total=max_retries, connect=2, read=1,
                      status=max_retries, backoff_factor=backoff, backoff_max=30,
                      status_forcelist=(429, 500, 502, 503, 504),
                      allowed_methods=frozenset({"GET", "POST"}),
                      respect_retry_after_header=True, raise_on_status=False)
        self.session.mount("http://", HTTPAdapter(max_retries=retry))
        self.session.mount("https://", HTTPAdapter(max_retries=retry))
        self.stats = {"requests": 0, "token_refreshes": 0, "retries_401": 0, "retries_transport": 0,
                      "retries_status": 0}

    def close(self) -> None:
        self.session.close()

    # -- auth ---------------------------------------------------------------------------------------
    def _send(self, method: str, path: str, **kw) -> requests.Response:
        """One request within the deadlines; PlatformUnreachable when there is no answer."""
        down = _unreachable.get(self.base_url)
        if down and time.monotonic() < down[0]:
            raise PlatformUnreachable(down[1])
        for attempt in range(self.max_retries + 1):
            try:
                return self.session.request(method, f"{self.base_url}{path}",
                                            timeout=(self.connect_timeout, self.timeout), **kw)
            except requests.RequestException as e:
                why, final = self._transport_failure(e)
                if final or attempt == self.max_retries:
                    msg = (f"cannot reach the national platform at {self.base_url} ({why}, "
                           f"{method} {path}); check HUILIU_API_URL and that the platform is up. "
                           "Nothing was lost: the next run continues from the last cursor")
                    _unreachable[self.base_url] = (time.monotonic() + UNREACHABLE_COOLDOWN_S, msg)
                    raise PlatformUnreachable(msg) from None
                log.warning("%s %s: %s; retrying", method, path, why)
                self.stats["retries_transport"] += 1
                time.sleep(min(self.backoff * 2 ** attempt, 8.0))
        raise AssertionError("unreachable")  # the loop returns or raises

    def _transport_failure(self, e: requests.RequestException) -> tuple[str, bool]:
        """(what happened, whether retrying here is pointless: urllib3 already retried it)."""
        reason = getattr(e.args[0], "reason", None) if e.args else None
        if isinstance(reason, NewConnectionError):  # a subclass of ConnectTimeoutError: first
            return "connection refused or host unknown", True
        if isinstance(e, requests.ConnectTimeout) or isinstance(reason, ConnectTimeoutError):
            return f"no connection within {self.connect_timeout:g} s", True
        if isinstance(e, requests.ReadTimeout) or isinstance(reason, ReadTimeoutError):
            return (f"no answer within {self.timeout:g} s, HUILIU_API_TIMEOUT_SECONDS", True)
        return f"connection dropped: {type(e).__name__}", False

    def _fetch_token(self) -> None:
        r = self._send("POST", "/oauth/token", data={
            "grant_type": "client_credentials", "client_id": self.client_id,
            "client_secret": self._secret})
        if r.status_code == 401:
            raise ApiError(f"the platform rejected client {self.client_id!r}: check "
                           "HUILIU_API_CLIENT_ID / HUILIU_API_CLIENT_SECRET")
        self._raise_for(r, "token")
        body = orjson.loads(r.content)
        self._token = body["access_token"]
        # Refresh a little early so a token never expires between check and use.
        self._token_expiry = time.monotonic() + max(1.0, float(body.get("expires_in", 60)) - 5)
        self.stats["token_refreshes"] += 1

    def _get(self, path: str, params: dict | None = None) -> dict:
        return self._request("GET", path, params=params)

    def _request(self, method: str, path: str, params: dict | None = None,
                 body: dict | None = None) -> dict:
        for _attempt in range(self.max_retries + 1):
            if self._token is None or time.monotonic() >= self._token_expiry:
                self._fetch_token()
            self.stats["requests"] += 1
            r = self._send(method, path, params=params, json=body,
                           headers={"Authorization": f"Bearer {self._token}"})
            retries = getattr(getattr(r.raw, "retries", None), "history", ())
            self.stats["retries_status"] += sum(1 for h in retries if h.status)
            self.stats["retries_transport"] += sum(1 for h in retries if not h.status)
            if r.status_code == 401:  # expired or revoked early: re-authenticate once more
                self.stats["retries_401"] += 1
                self._token = None
                continue
            if r.status_code == 429:  # urllib3 already waited Retry-After `max_retries` times
                time.sleep(float(r.headers.get("Retry-After", "1")))
                continue
            self._raise_for(r, path)
            return orjson.loads(r.content)
        raise ApiError(f"the national platform at {self.base_url} kept refusing {method} {path} "
                       f"({self.max_retries + 1} attempts, last HTTP {r.status_code}); the run "
                       "can be retried, the cursor is kept")

    def _raise_for(self, r: requests.Response, what: str) -> None:
        if r.status_code >= 400:
            text = " ".join(r.text[:200].split())
            raise ApiError(f"the national platform at {self.base_url} answered HTTP "
                           f"{r.status_code} to {what} after retries: {text}")

    # -- feed ---------------------------------------------------------------------------------------
    def changes(self, resource: str, cursor: str, limit: int) -> Page:
        body = self._get(f"/api/v1/resources/{resource}/changes",
                         {"cursor": cursor, "limit": limit})
        return Page(body["records"], body["next_cursor"], bool(body["has_more"]))

    def snapshots(self, resource: str) -> list[Snapshot]:
        body = self._get(f"/api/v1/resources/{resource}/snapshots")
        return [Snapshot(str(s["snapshot_id"]), str(s["as_of"]), int(s["rows"]),
                         str(s["feed_cursor"])) for s in body["snapshots"]]

    def snapshot_page(self, resource: str, snapshot_id: str, cursor: str, limit: int) -> Page:
        body = self._get(f"/api/v1/resources/{resource}/snapshots/{snapshot_id}",
                         {"cursor": cursor, "limit": limit})
        return Page(body["records"], body["next_cursor"], bool(body["has_more"]))

    # -- objections (数据异议): the platform's objection interface covers every provider ----------------
    def submit_objection(self, objection: dict) -> dict:
        """POST one objection; idempotent on objection_id (a repeat returns the first answer)."""
        return self._request("POST", "/api/v1/objections", body=objection)

    def objection_answers(self, cursor: str, limit: int = 5000) -> Page:
        body = self._get("/api/v1/objections/answers", {"cursor": cursor, "limit": limit})
        return Page(body["answers"], body["next_cursor"], bool(body["has_more"]))
