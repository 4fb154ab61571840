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
