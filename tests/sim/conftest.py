"""Fixtures for the simulator tests (helpers live in sim_helpers.py beside this file)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from sim_helpers import start_sim  # noqa: E402


@pytest.fixture(scope="module")
def clean_sim(tmp_path_factory):
    """Clean profile (no defects), advanced 35 days so that a month boundary has passed."""
    s = start_sim(tmp_path_factory.mktemp("clean"), "--defect-profile", "none")
    s.advance(35)
    yield s
    s.stop()
