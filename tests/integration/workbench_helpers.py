"""A small client of the workbench's API, for the tests (the service itself runs through
serving_helpers.running_service)."""

from __future__ import annotations

import time

import httpx

FINAL = ("done", "failed", "timeout", "cancelled")


class Analyst:
    """One logged-in analyst's session."""

    def __init__(self, url: str, credential: str, purpose: str = "ANALYTICS",
                 tier: str | None = None) -> None:
        self.http = httpx.Client(base_url=url, timeout=60)
        r = self.http.post("/api/login", json={"credential": credential, "purpose": purpose,
                                                "tier": tier})
        assert r.status_code == 200, r.text
        self.me = r.json()
        self.http.headers["Authorization"] = f"Bearer {self.me['token']}"

    def submit(self, sql: str) -> httpx.Response:
        return self.http.post("/api/queries", json={"sql": sql})

    def wait(self, qid: str, timeout: float = 120) -> dict:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            st = self.http.get(f"/api/queries/{qid}", params={"wait": 5}).json()
            if st["state"] in FINAL:
                return st
        raise AssertionError(f"query {qid} did not finish within {timeout} s")

    def run(self, sql: str) -> tuple[dict, list[list]]:
        """(final state, every row shown) of a query that must be accepted."""
        r = self.submit(sql)
        assert r.status_code in (200, 202), (sql, r.text)
        st = self.wait(r.json()["id"])
        rows: list[list] = []
        if st["state"] == "done":
            while len(rows) < st["row_count"]:
                page = self.http.get(f"/api/queries/{st['id']}/rows",
                                     params={"offset": len(rows), "limit": 1000}).json()
                rows += page["rows"]
        return st, rows
