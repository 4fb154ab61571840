"""What every command group shares: the home option, settings from it, the published snapshot."""

from __future__ import annotations

import click
import duckdb

from pipelines.settings import Settings

home_opt = click.option("--home", help="Data folder (default $HUILIU_HOME or ./data).")


def settings_for(home: str | None, drop_root: str | None = None, api_url: str | None = None):
    overrides = {k: v for k, v in {"home": home, "drop_root": drop_root,
                                   "api_url": api_url}.items() if v}
    return Settings(**overrides)


def read_published(s: Settings):
    """Read the published snapshot: never blocks or is blocked by a running backflow."""
    p = s.published_current
    if not p.exists():
        raise click.ClickException(f"nothing published yet under {s.published_dir}; run "
                                   "`huiliu backflow` or `huiliu demo` first")
    return duckdb.connect(str(p), read_only=True)
