"""The simulator as a real process on a free loopback port, and reading drops like a hub."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
SECRET = "dev-secret-change-me"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class SimProc:
    url: str
    drop_root: Path
    state_dir: Path
    proc: subprocess.Popen

    def post(self, path: str, **kw) -> httpx.Response:
        return httpx.post(self.url + path, timeout=120, **kw)

    def get(self, path: str, **kw) -> httpx.Response:
        return httpx.get(self.url + path, timeout=60, **kw)

    def put(self, path: str, **kw) -> httpx.Response:
        return httpx.put(self.url + path, timeout=60, **kw)

    def token(self, node: str = "500000") -> str:
        r = self.post("/oauth/token", data={"grant_type": "client_credentials",
                                            "client_id": f"node-{node}", "client_secret": SECRET})
        r.raise_for_status()
        return r.json()["access_token"]

    def advance(self, days: int) -> dict:
        r = self.post("/admin/advance", params={"days": days})
        r.raise_for_status()
        return r.json()

    def pull(self, resource: str, token: str, limit: int = 5000, cursor: str = "") -> tuple:
        """All records after `cursor`, and the cursors returned on the way."""
        recs, cursors = [], []
        with httpx.Client(base_url=self.url, timeout=60,
                          headers={"Authorization": f"Bearer {token}"}) as c:
            while True:
                r = c.get(f"/api/v1/resources/{resource}/changes",
                          params={"cursor": cursor, "limit": limit})
                r.raise_for_status()
                body = r.json()
                recs.extend(body["records"])
                cursor = body["next_cursor"]
                cursors.append((cursor, len(recs)))
                if not body["has_more"]:
                    return recs, cursors

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def start_sim(tmp: Path, *args: str, seed: int = 7, scale: int = 2000) -> SimProc:
    port = free_port()
    tmp.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HUILIU_SIM_CLIENT_SECRET": SECRET}
    log = open(tmp / "sim.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipelines.sim", "serve", "--seed", str(seed), "--scale", str(scale),
         "--port", str(port), "--drop-root", str(tmp / "drops"), "--state-dir", str(tmp / "state"),
         "--activity", "30", *args],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError((tmp / "sim.log").read_text())
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return SimProc(url, tmp / "drops", tmp / "state", proc)
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("simulator did not become healthy")


CODEC = {"UTF-8": "utf-8", "GBK": "gbk", "GB18030": "gb18030"}


def batches(drop_root: Path, provider: str, resource: str) -> list[Path]:
    folder = drop_root / provider / resource
    return sorted(p for p in folder.iterdir() if p.is_dir()) if folder.exists() else []


def read_batch(folder: Path) -> tuple[dict, list[str], list[list[str]]]:
    """(manifest, header, rows) of a complete, healthy batch."""
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    header: list[str] = []
    rows: list[list[str]] = []
    for f in manifest["files"]:
        text = gzip.decompress((folder / f["name"]).read_bytes()).decode(
            CODEC[manifest["encoding"]])
        data = list(csv.reader(io.StringIO(text, newline="")))
        header = data[0]
        rows.extend(data[1:])
    return manifest, header, rows


def all_rows(drop_root: Path, provider: str, resource: str) -> list[dict]:
    out = []
    for b in batches(drop_root, provider, resource):
        _m, header, rows = read_batch(b)
        out.extend(dict(zip(header, r, strict=True)) for r in rows)
    return out
