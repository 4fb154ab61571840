"""A backflow run for another node than the catalogue's refuses to start, in one line."""

import pytest

from pipelines import backflow
from pipelines.catalog.model import catalog
from pipelines.cli.failures import EXPECTED, one_line
from pipelines.settings import Settings

pytestmark = pytest.mark.unit

CAT = catalog()


@pytest.mark.parametrize("delivery", ["bulk", "api"])
def test_a_run_for_another_node_stops_before_touching_the_hub(tmp_path, delivery):
    s = Settings(home=tmp_path / "hub", drop_root=tmp_path / "drops", node="110000")
    resource = next(r for r in CAT.resources.values() if r.delivery == delivery)
    with pytest.raises(backflow.NodeMismatch) as e:
        backflow.run_resource(s, CAT, resource)
    assert isinstance(e.value, EXPECTED)  # the CLI says it in one line, without a traceback
    line = one_line(e.value)
    assert "110000" in line and CAT.node.code in line and "\n" not in line
    assert not (tmp_path / "hub").exists()  # no warehouse created, nothing pulled or landed

