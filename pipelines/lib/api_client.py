"""HTTP client for the national platform's change-feed API.

Client-credential token (refreshed when it expires or the server says it is invalid), retries with
exponential backoff on 5xx and dropped connections, and Retry-After honoured on 429. Returns frozen
dataclasses, not dicts.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import orjson
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

log = logging.getLogger(__name__)


class ApiError(Exception):
    """The API refused or kept failing. The message says what to check."""


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
                 timeout: float = 30.0, max_retries: int = 6, backoff: float = 0.5):
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self._secret = client_secret
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self._token: str | None = None
        self._token_expiry = 0.0
        self.session = requests.Session()
        # urllib3 retries connection-level failures and 5xx/429, sleeping Retry-After when given.
        retry = Retry(total=max_retries, connect=max_retries, read=max_retries,
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
    def _fetch_token(self) -> None:
        r = self.session.post(f"{self.base_url}/oauth/token", timeout=self.timeout, data={
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
            try:
                r = self.session.request(method, f"{self.base_url}{path}", params=params,
                                         json=body, timeout=self.timeout,
                                         headers={"Authorization": f"Bearer {self._token}"})
            except requests.ConnectionError as e:
                log.warning("connection to %s failed (%s); retrying", path, e)
                self.stats["retries_transport"] += 1
                time.sleep(self.backoff)
                continue
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
        raise ApiError(f"{method} {path} failed after {self.max_retries + 1} attempts; "
                       "the platform may be down — the run can be retried, the cursor is kept")

    @staticmethod
    def _raise_for(r: requests.Response, what: str) -> None:
        if r.status_code >= 400:
            raise ApiError(f"{what}: HTTP {r.status_code} {r.text[:200]}")

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
