import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests/dropwriter.py and friends


@pytest.fixture
def hub_settings(tmp_path):
    from pipelines.settings import Settings

    return Settings(home=tmp_path / "hub", drop_root=tmp_path / "drops")
