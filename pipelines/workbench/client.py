"""`huiliu sql`: the workbench's API from a terminal. The same service decides everything (the
checks, the time limit, the audit entry); this only logs in, sends SQL and prints answers."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path

import httpx

WAIT_S = 10  # each state request waits this long at most for the query to end
PAGE = 1000  # rows a request brings
FINAL = ("done", "failed", "timeout", "cancelled")


class ClientError(Exception):
    """The service refused or could not be reached; the message says what to do."""


class WorkbenchClient:
    def __init__(self, url: str, credential: str, purpose: str, tier: str | None,
                 render: Callable[[list[str], list[tuple]], str]) -> None:
        self.render = render  # the CLI's table layout
        self.http = httpx.Client(base_url=url.rstrip("/"), timeout=30)
        try:
            r = self.http.post("/api/login", json={"credential": credential, "purpose": purpose,
                                                    "tier": tier})
        except httpx.HTTPError as e:
            self.http.close()
            raise ClientError(f"the workbench at {url} cannot be reached ({e.__class__.__name__})"
                              ": is `huiliu workbench serve` running there?") from None
        me = self._answer(r)
        self.http.headers["Authorization"] = f"Bearer {me['token']}"
        self.who = (f"{me['analyst']} ({me['department']}) · purpose {me['purpose']} · "
                    f"{me['tier']} tier · {me['row_cap']:,} rows shown, {me['export_cap']:,} "
                    "exported")

    def __enter__(self) -> WorkbenchClient:
        return self

    def __exit__(self, *_) -> None:
        try:
            self.http.post("/api/logout")
        except httpx.HTTPError:
            pass
        self.http.close()

    def _answer(self, r: httpx.Response) -> dict:
        if r.status_code >= 400:
            try:
                body = r.json()
            except ValueError:
                body = {"message": r.text[:200]}
            where = (f" (line {body['line']}, column {body['column']})"
                     if body.get("line") is not None else "")
            raise ClientError(f"{r.status_code} {body.get('error', '')}: "
                              f"{body.get('message', '')}{where}")
        return r.json()

    def run(self, sql: str) -> dict:
        """The query's final state (polling), or ClientError when it was refused."""
        q = self._answer(self.http.post("/api/queries", json={"sql": sql, "wait": WAIT_S,
                                                               "rows": PAGE}))
        try:
            while q["state"] not in FINAL:
                q = self._answer(self.http.get(f"/api/queries/{q['id']}",
                                               params={"wait": WAIT_S}))
            return q
        except KeyboardInterrupt:
            self.http.post(f"/api/queries/{q['id']}/cancel")
            raise

    def rows(self, qid: str, total: int, first: list[list] | None = None) -> list[list]:
        out: list[list] = list(first or [])
        while len(out) < total:
            page = self._answer(self.http.get(f"/api/queries/{qid}/rows",
                                              params={"offset": len(out), "limit": PAGE}))
            if not page["rows"]:
                break
            out += page["rows"]
        return out

    def run_and_print(self, sql: str, fmt: str, output: str | None,
                      echo: Callable[[str], None]) -> bool:
        try:
            st = self.run(sql)
        except ClientError as e:
            echo(f"refused: {e}")
            return False
        if st["state"] != "done":
            echo(f"{st['state']}: {(st.get('error') or {}).get('message', '')}")
            return False
        if fmt in ("csv", "parquet") and output:
            r = self.http.get(f"/api/queries/{st['id']}/export", params={"format": fmt},
                              timeout=None)
            if r.status_code >= 400:
                self._answer(r)
            Path(output).write_bytes(r.content)
            echo(f"{output}: exported ({st['row_count']:,} rows shown on the page; the export "
                 "holds up to the export cap)")
            return True
        if fmt == "parquet":
            raise ClientError("--format parquet needs -o FILE")
        names = [c["name"] for c in st["columns"]]
        rows = self.rows(st["id"], st["row_count"], st.get("rows"))
        if fmt == "csv":
            buf = io.StringIO()
            w = csv.writer(buf, lineterminator="\n")
            w.writerow(names)
            w.writerows(rows)
            echo(buf.getvalue().rstrip("\n"))
        else:
            echo(self.render(names, [tuple("" if v is None else v for v in r) for r in rows]))
        note = f"{st['row_count']:,} rows in {st['elapsed_ms'] / 1000:.2f} s"
        if st["truncated"]:
            note += " (truncated: export with --format csv|parquet -o FILE for more)"
        if fmt == "table":
            echo(note)
        return True

    def interactive(self, echo: Callable[[str], None]) -> None:
        buf: list[str] = []
        while True:
            try:
                line = input("sql> " if not buf else "...> ")
            except (EOFError, KeyboardInterrupt):
                echo("")
                return
            if not buf and line.strip() in ("\\q", "quit", "exit"):
                return
            buf.append(line)
            if line.rstrip().endswith(";"):
                try:
                    self.run_and_print("\n".join(buf), "table", None, echo)
                except KeyboardInterrupt:
                    echo("cancelled")
                buf = []
