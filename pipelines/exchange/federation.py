"""Several hub nodes and the national exchange side by side on one machine, from one call (the
demo's `huiliu demo --nodes …` and the tests): each node with its own home, catalogue
(HUILIU_NODE), signing key, audit key, credentials, warehouse and audit log, backflowing its own
scope from its own simulator process. The simulators share seed and scale, so they play one
world (it depends on neither the node nor the process), each delivering one node's scope.

The exchange's directory is written from each node's own entry (`member_entry`: its catalogue
and public keys), as an operator would publish the entries nodes send in."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from pipelines import paths
from pipelines.catalog.model import load_catalog
from pipelines.exchange import keys
from pipelines.exchange.directory import EXCHANGE, Directory, Member, MemberKey
from pipelines.exchange.member_entry import member_entry
from pipelines.exchange.keys import OWNER_ONLY_FILE
from pipelines.serving.credentials import Credentials
from pipelines.sim.process import SimulatorProcess, free_port

DEFAULT_NODES = ("500000", "510000", "440300")


@dataclass
class NodeProcess:
    code: str
    home: Path
    env: dict[str, str]
    port: int
    sim: SimulatorProcess
    credentials: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def audit_log(self) -> Path:
        return self.home / "serving" / "audit.jsonl"

    def start(self) -> None:
        log = open(self.home / "service.log", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", paths.CLI_MODULE, "serve", "--home", str(self.home),
             "--port", str(self.port)], env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        _stop(self.proc)


@dataclass
class Federation:
    root: Path
    nodes: dict[str, NodeProcess]
    exchange_home: Path
    exchange_port: int
    exchange_env: dict[str, str]
    exchange_proc: subprocess.Popen | None = None

    @property
    def exchange_url(self) -> str:
        return f"http://127.0.0.1:{self.exchange_port}"

    @property
    def exchange_log(self) -> Path:
        return self.exchange_home / "exchange" / "audit.jsonl"

    @property
    def directory(self) -> Path:
        return self.exchange_home / "directory.json"

    def start_exchange(self) -> None:
        log = open(self.exchange_home / "exchange.log", "ab")
        self.exchange_proc = subprocess.Popen(
            [sys.executable, "-m", paths.CLI_MODULE, "exchange", "serve",
             "--home", str(self.exchange_home), "--port", str(self.exchange_port)],
            env=self.exchange_env, stdout=log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 120) -> None:
        urls = [self.exchange_url] + [n.url for n in self.nodes.values()]
        deadline = time.monotonic() + timeout
        for url in urls:
            while True:
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{url} not ready after {timeout:.0f}s; see the "
                                       f"service logs under {self.root}")
                time.sleep(0.2)

    def stop(self) -> None:
        for n in self.nodes.values():
            n.stop()
        _stop(self.exchange_proc)
        for n in self.nodes.values():
            n.sim.stop()


def _stop(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _secret() -> str:
    return secrets.token_hex(32)


def _write_env(path: Path, env: dict[str, str]) -> None:
    """The node's settings for commands run later against it (`huiliu audit verify`); its
    keys are in it, so it is for the hub's account alone."""
    names = sorted(k for k in env if k.startswith("HUILIU_"))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, OWNER_ONLY_FILE)
    with os.fdopen(fd, "w") as f:
        f.writelines(f"{k}={env[k]}\n" for k in names)


def prepare(root: Path, nodes: tuple[str, ...] = DEFAULT_NODES, *, scale: int = 3000,
            seed: int = 42, suite: str = "ed25519-sha256", extra_env: dict | None = None,
            sim_args: tuple[str, ...] = (), suites: dict[str, str] | None = None,
            say=lambda _msg: None) -> Federation:
    """Homes, simulators, each node's backflow (in parallel), keys, credentials and the
    directory; nothing serving yet (`start`). Every node signs with `suite` unless `suites`
    names another for it (a member's suite is its own choice: the directory says which)."""
    root.mkdir(parents=True, exist_ok=True)
    exchange_home = root / "exchange"
    exchange_home.mkdir(exist_ok=True)
    base = {k: v for k, v in os.environ.items() if not k.startswith("HUILIU_")}
    base |= {"HUILIU_DEMO": "1", "HUILIU_EXCHANGE_DIRECTORY": str(exchange_home /
                                                                   "directory.json")}
    exchange_port = free_port()
    base["HUILIU_EXCHANGE_URL"] = f"http://127.0.0.1:{exchange_port}"
    base |= extra_env or {}
    members: dict[str, NodeProcess] = {}
    for code in nodes:
        home = root / code
        home.mkdir(exist_ok=True)
        sim = SimulatorProcess(home, scale=scale, seed=seed, extra=["--node", code, *sim_args])
        env = {**base, "HUILIU_HOME": str(home), "HUILIU_NODE": code,
               "HUILIU_API_CLIENT_ID": f"node-{code}", "HUILIU_API_URL": sim.url,
               "HUILIU_DROP_ROOT": str(home / "drops"), "HUILIU_AUDIT_KEY": _secret(),
               "HUILIU_PSEUDONYM_KEY": _secret()}
        members[code] = NodeProcess(code, home, env, free_port(), sim)
    say(f"starting {len(nodes)} simulators (one world: seed {seed}, scale {scale:,}) ...")
    for n in members.values():
        n.sim.start()
        n.env["HUILIU_TODAY"] = n.sim.status()["date"]
        _write_env(n.home / "node.env", n.env)
    say("backflow of each node's own scope (in parallel) ...")
    runs = {}
    for n in members.values():
        log = open(n.home / "backflow.log", "ab")
        runs[n.code] = subprocess.Popen(
            [sys.executable, "-m", paths.CLI_MODULE, "run", "--home", str(n.home)],
            env=n.env, stdout=log, stderr=subprocess.STDOUT)
    failed = [code for code, p in runs.items() if p.wait() != 0]
    if failed:
        raise RuntimeError(f"backflow failed on {failed}; see backflow.log under each home")
    directory = Directory()
    for n in members.values():
        keys.generate(n.home, n.code, (suites or {}).get(n.code, suite))
        directory.add(member_entry(load_catalog(node=n.code), n.home, n.url))
        for dept in sorted(c.code for c in load_catalog(node=n.code).consumers):
            n.credentials[dept] = Credentials(n.home / "serving" / "credentials.sqlite"
                                              ).issue(dept)
    stamp = keys.generate(exchange_home, EXCHANGE, suite)
    directory.add(Member(EXCHANGE, "国家数据共享交换平台", base["HUILIU_EXCHANGE_URL"],
                         tuple(MemberKey(k["key_id"], k["suite"], k["public"])
                               for k in keys.public_keys(exchange_home))))
    del stamp
    (exchange_home / "directory.json").write_bytes(directory.dumps())
    exchange_env = {**base, "HUILIU_HOME": str(exchange_home), "HUILIU_AUDIT_KEY": _secret()}
    _write_env(exchange_home / "exchange.env", exchange_env)
    return Federation(root, members, exchange_home, exchange_port, exchange_env)


def start(fed: Federation) -> Federation:
    fed.start_exchange()
    for n in fed.nodes.values():
        n.start()
    fed.wait_ready()
    return fed
