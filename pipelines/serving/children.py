"""The serving side's helper processes (the audit writer, the access-log indexer): started from
this checkout's code, and stopped by waiting for them to finish before killing them."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

from pipelines import paths

log = logging.getLogger(__name__)


def start_module(module: str, *args: str, **popen) -> subprocess.Popen:
    """`python -m module args` with this checkout first on PYTHONPATH."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(paths.ROOT), os.environ.get("PYTHONPATH")) if p)}
    return subprocess.Popen([sys.executable, "-m", module, *args], env=env, **popen)


def wait_or_kill(proc: subprocess.Popen, timeout: float, what: str) -> None:
    """Let a child told to stop finish its work; kill it if it has not within `timeout`."""
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        log.error("%s did not stop within %s s; killed", what, timeout)
        proc.kill()
        proc.wait()
