"""One typed settings object for every process of the hub (CLI, Dagster code, services).

Values come from the environment (prefix HUILIU_), then `.env`; `.env.example` lists them all.
Paths default under `./data` so a fresh clone works without any configuration.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pydantic import SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HUILIU_", env_file=".env", extra="ignore")

    home: Path = Path("data")
    """Root of everything the hub writes: landing/, warehouse/, published/."""
    node: str = "500000"
    """GB/T 2260 code of the local node this hub runs for; a backflow run refuses to start when
    the catalogue (catalogs/node.yaml) is for another node."""
    drop_root: Path | None = None
    """Where providers' bulk drops arrive (default: <home>/drops)."""
    api_url: str = "http://127.0.0.1:8765"
    """Base URL of the national platform's API (the simulator in the demo and tests)."""
    api_client_id: str = "node-500000"
    api_client_secret: SecretStr = SecretStr("dev-secret-change-me")
    api_page_size: int = 10_000
    api_batch_rows: int = 200_000
    """Rows per API batch: each batch lands and commits with its cursor, so a crash loses at most one."""
    api_timeout_seconds: float = 30.0
    """Longest wait for the platform's answer to one request (read timeout)."""
    api_connect_timeout_seconds: float = 5.0
    """Longest wait for a connection to the platform."""
    api_max_retries: int = 6
    contracts: bool = True
    """Validate every batch against its contract (Great Expectations) before it is stored."""
    api_rate: float = 200.0
    """Prefill service: requests a second per consumer (token bucket), shared by its workers."""
    api_workers: int = 1
    """Prefill service: its worker processes (`huiliu serve --workers` sets it for them). Each keeps
    its own token buckets, so each takes a 1/N share of `api_rate`."""
    workbench_workers: int = 2
    """Analysts' workbench: query worker processes (one analyst never holds all of them)."""
    workbench_threads: int = 0
    """DuckDB threads of each workbench worker (0: one per core)."""
    workbench_memory_limit: str = "4GB"
    """DuckDB memory limit of each workbench worker (spills to disk beyond it)."""
    workbench_timeout_seconds: float = 60.0
    """A query is interrupted after this long, and its worker replaced if the interrupt does not
    take within a few seconds."""
    workbench_row_cap: int = 1000
    """Rows a query shows (the page, `huiliu sql`); more are marked truncated."""
    workbench_export_cap: int = 100_000
    """Rows an export (CSV, Parquet) may hold."""
    published_keep: int = 3
    """How many published snapshots to keep (readers of an older one keep working meanwhile)."""
    exchange_directory: Path | None = None
    """全国通办: the national exchange's member directory (a file the exchange's operator
    distributes). Unset: this node neither asks nor answers other nodes."""
    exchange_url: str = "http://127.0.0.1:8700"
    """Where this node sends its requests to other nodes: the national exchange, never a node."""
    exchange_deadline_seconds: float = 2.0
    """Longest wait for another node's answer; past it the fields are `unavailable`
    (REMOTE_TIMEOUT) and the local fields of the case are answered meanwhile."""
    exchange_case_ttl_seconds: float = 900.0
    """How long a case keeps what other nodes answered for it (in memory only), then forgets it."""
    exchange_breaker_failures: int = 3
    """Failures in a row after which a node is not asked again until the pause below has passed."""
    exchange_breaker_pause_seconds: float = 10.0
    today: dt.date | None = None
    """The hub's business date. Unset: today in Asia/Shanghai. Set it only to replay the past or
    to follow the simulator, whose days pass in seconds (the demo does)."""

    @field_validator("drop_root", "exchange_directory", "today", mode="before")
    @classmethod
    def _blank_is_unset(cls, v):
        # `.env.example` lists every variable, optional ones blank: blank means unset, not "."
        return None if isinstance(v, str) and not v.strip() else v

    def business_date(self) -> dt.date:
        return self.today or business_today()

    @property
    def drops(self) -> Path:
        return self.drop_root or self.home / "drops"

    @property
    def landing(self) -> Path:
        return self.home / "landing"

    @property
    def warehouse_path(self) -> Path:
        return self.home / "warehouse" / "huiliu.duckdb"

    @property
    def published_dir(self) -> Path:
        return self.home / "published"

    @property
    def published_current(self) -> Path:
        return self.published_dir / "current.duckdb"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"


BEIJING = dt.timezone(dt.timedelta(hours=8))


def business_today() -> dt.date:
    return dt.datetime.now(BEIJING).date()

