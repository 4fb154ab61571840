import os
import secrets
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests/dropwriter.py and friends
# the secret the hub's operator sets (.env.example): the analysts' tiers are built with every run
os.environ.setdefault("HUILIU_PSEUDONYM_KEY", secrets.token_hex(32))


@pytest.fixture
def hub_settings(tmp_path):
    from pipelines.settings import Settings

    return Settings(home=tmp_path / "hub", drop_root=tmp_path / "drops")
