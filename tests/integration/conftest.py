import datetime as dt
import secrets
import shutil

import pytest
from playwright.sync_api import sync_playwright

from pipelines.sim.process import SimulatorProcess
from pipelines import backflow
from pipelines.catalog.model import catalog
from pipelines.identity.reconcile import reconcile
from pipelines.warehouse.publish import publish
from pipelines.serving.store import build_store
from pipelines.settings import Settings
from pipelines.warehouse.writer import ensure_schema, writer


@pytest.fixture(scope="session")
def served_sim_world(tmp_path_factory):
    """The simulator's world (3,000 persons) flowed back, reconciled, published and exported to
    a serving store, once for the tests that serve it: (settings, the simulator's truth folder,
    the environment its services run with: one audit log, one key, one anchor). Read-only for
    them: each starts its own service and issues its own credentials."""
    tmp = tmp_path_factory.mktemp("served-world")
    cat = catalog()
    with SimulatorProcess(tmp / "sim", scale=3000, seed=5) as sim:
        s = Settings(home=tmp / "hub", drop_root=sim.home / "drops", api_url=sim.url,
                     today=dt.date.fromisoformat(sim.status()["date"]))
        for r in cat.resources.values():
            backflow.run_resource(s, cat, r)
        with writer(s.warehouse_path) as con:
            ensure_schema(con, cat)
            reconcile(con, cat, s.business_date())
        truth = sim.truth()
    publish(s)
    build_store(s.published_current.resolve(), s.home / "serving")
    env = {"HUILIU_HOME": str(s.home), "HUILIU_AUDIT_KEY": secrets.token_hex(32),
           "HUILIU_AUDIT_ANCHOR": str(tmp / "anchor" / "audit.anchor")}
    (tmp / "anchor").mkdir()
    return s, truth, env


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium, headless, for the tests of the hub's pages."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    assert exe, "Debian's chromium is needed for this test: apt install chromium"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, headless=True)
        yield b
        b.close()
