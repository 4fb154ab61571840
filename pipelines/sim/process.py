"""`huiliu demo`: a national-platform simulator on loopback, the main backflow job from a full load
through a few simulated days, a summary table, then the Dagster UI (unless --no-serve)."""

from __future__ import annotations

import logging
import datetime as dt
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from pipelines import paths
from pipelines.settings import Settings

log = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SimulatorProcess:
    """The simulator as a real child process on 127.0.0.1."""

    def __init__(self, home: Path, *, scale: int, seed: int = 42, port: int | None = None,
                 extra: list[str] | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.home = home
        self.args = [sys.executable, "-m", paths.SIM_MODULE, "serve", "--seed", str(seed),
                     "--scale", str(scale), "--port", str(self.port),
                     "--drop-root", str(home / "drops"), "--state-dir", str(home / "sim"),
                     *(extra or [])]
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 300) -> SimulatorProcess:
        self.home.mkdir(parents=True, exist_ok=True)
        logf = open(self.home / "simulator.log", "ab")
        self.proc = subprocess.Popen(self.args, stdout=logf, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"simulator exited with {self.proc.returncode}; see "
                                   f"{self.home / 'simulator.log'}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"simulator not ready after {timeout}s; see {self.home}/simulator.log")

    def advance(self, days: int = 1) -> dict:
        r = httpx.post(f"{self.url}/admin/advance", params={"days": days}, timeout=600)
        r.raise_for_status()
        return r.json()

    def set_faults(self, **rates: float) -> dict:
        r = httpx.put(f"{self.url}/admin/faults", json=rates, timeout=30)
        r.raise_for_status()
        return r.json()

    def set_defects(self, **rates: float) -> dict:
        r = httpx.put(f"{self.url}/admin/defects", json=rates, timeout=30)
        r.raise_for_status()
        return r.json()

    def status(self) -> dict:
        return httpx.get(f"{self.url}/admin/status", timeout=30).json()

    def truth(self) -> Path:
        r = httpx.post(f"{self.url}/admin/truth", timeout=600)
        r.raise_for_status()
        return Path(r.json()["dir"])

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def __enter__(self) -> SimulatorProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def demo_settings(home: Path, sim_url: str, today: dt.date | None = None) -> Settings:
    """The hub follows the simulator's calendar (its days pass in seconds)."""
    return Settings(home=home, api_url=sim_url, drop_root=home / "drops", today=today)


def reset(home: Path) -> None:
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)


def serve_ui(settings: Settings, port: int = 3000) -> None:
    env = dict(os.environ)
    cmd = [sys.executable, "-m", "dagster", "dev", "-m", paths.DAGSTER_DEFINITIONS,
           "-h", "127.0.0.1", "-p", str(port)]
    print(f"\nDagster UI: http://127.0.0.1:{port}  (Ctrl-C to stop)", flush=True)
    proc = subprocess.Popen(cmd, env=env)
    try:
        proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait(30)
