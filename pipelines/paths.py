"""Where the repository's declarative data lives (catalogs/, assets/, quality/) and where this
checkout's code runs from. Every module takes its paths from here, never from its own place in the
tree, so moving a module cannot silently break one."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the checkout: child processes run its code
CATALOGS = ROOT / "catalogs"  # the responsibility list, code tables, templates, identity config
ASSETS = ROOT / "assets"  # SQL, HTML templates, the API description
QUALITY = ROOT / "quality"  # contracts, timeliness, objections, reconciliation settings
SQL = ASSETS / "sql"
HTML_TEMPLATES = ASSETS / "templates"

# Modules started by name (`python -m`, uvicorn's targets, Dagster's code location): named here
# once, and tests/unit/test_layout.py resolves every one, so a move that misses one fails a test
# rather than a run.
CLI_MODULE = "pipelines.cli"
SIM_MODULE = "pipelines.sim"
DAGSTER_DEFINITIONS = "pipelines.definitions"
SERVICE_APP = "pipelines.serving.http.app:app_from_env"
SERVICE_HTTP_PROTOCOL = "pipelines.serving.http.protocol:LimitedHttpTools"
WORKBENCH_APP = "pipelines.workbench.http.app:app_from_env"
EXCHANGE_APP = "pipelines.exchange.relay:app_from_env"
