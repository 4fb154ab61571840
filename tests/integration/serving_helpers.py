"""The hub's services (the prefill service, the analysts' workbench) as real processes on
loopback, for the tests that talk to them."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from pathlib import Path

import httpx

from pipelines.sim.process import free_port


@contextlib.contextmanager
def running_service(home: Path, env: dict, command: tuple[str, ...] = ("serve",)):
    """`huiliu <command> --home HOME` on a free port (default the prefill service; the workbench
    is ("workbench", "serve")); yields its URL once /healthz answers."""
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", *command, "--home", str(home),
                             "--port", str(port := free_port())], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            assert proc.poll() is None, "the service exited at start-up (see its stderr above)"
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise AssertionError("the service did not answer /healthz within 60 s")
        yield url
    finally:
        proc.terminate()
        proc.wait(20)


def huiliu(home: Path, env: dict, *args: str) -> str:
    """`huiliu <args> --home HOME` run to success; its stdout."""
    out = subprocess.run([sys.executable, "-m", "pipelines.cli", *args, "--home", str(home)],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()
