"""Earlier versions of the prefill service, loaded in the same rounds as this one (`--baseline REF`).

The machine's speed drifts by a third between minutes, so a change's cost is only measured beside
the version before it, round by round. Each baseline runs from a git worktree of REF with its own
home: its own serving store, built by its own code from the same published warehouse, its own
credential and audit log.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_STORE = r"""
import json, sys, time
from pathlib import Path
from pipelines.serving.store import build_store
t = time.perf_counter()
path = build_store(Path(sys.argv[1]), Path(sys.argv[2]))
print(json.dumps({"seconds": time.perf_counter() - t, "bytes": path.stat().st_size}))
"""


@dataclass(frozen=True)
class Baseline:
    name: str  # "prefill@<ref>"
    app: str  # its uvicorn app factory (the service moved from pipelines.api to serving.http)
    http: list[str]  # its HTTP protocol option (none before the hub had its own)
    tree: Path  # the worktree its code runs from
    env: dict  # HUILIU_HOME, PYTHONPATH, ... for its processes
    key: str  # a WJW credential of its own
    store: dict  # build seconds and bytes of its store


def _run(cmd: list[str], env: dict, cwd: Path) -> str:
    out = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"baseline step failed: {' '.join(cmd[:4])}…\n{out.stderr[-3000:]}")
    return out.stdout


def prepare(ref: str, work: Path, published: Path, env: dict) -> Baseline:
    """A worktree of `ref` (kept in `work` and reused), its store and a credential."""
    sha = _run(["git", "rev-parse", "--short", ref], env, ROOT).strip()
    tree = work / f"tree-{sha}"
    if not tree.exists():
        _run(["git", "worktree", "add", "--detach", str(tree), sha], env, ROOT)
    home = work / f"hub-{sha}"
    serving = home / "serving"
    serving.mkdir(parents=True, exist_ok=True)
    for old in serving.glob("audit*"):  # each run starts a fresh audit log
        old.unlink()
    (home / "audit.anchor").unlink(missing_ok=True)
    benv = {**env, "HUILIU_HOME": str(home), "PYTHONPATH": str(tree),
            "HUILIU_AUDIT_ANCHOR": str(home / "audit.anchor")}
    store = json.loads(_run([sys.executable, "-c", _STORE, str(published), str(serving)],
                            benv, tree).strip().splitlines()[-1])
    key = _run([sys.executable, "-m", "pipelines.cli", "consumers", "issue", "WJW"],
               benv, tree).strip()
    http_pkg = next(p for p in ("pipelines/serving/http", "pipelines/api")
                    if (tree / p / "app.py").exists()).replace("/", ".")
    http = (["--http", f"{http_pkg}.protocol:LimitedHttpTools"]
            if (tree / http_pkg.replace(".", "/") / "protocol.py").exists() else [])
    return Baseline(f"prefill@{sha}", f"{http_pkg}.app:app_from_env", http, tree, benv, key,
                    store)
