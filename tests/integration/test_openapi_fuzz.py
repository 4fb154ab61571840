"""Schemathesis generates requests from the service's own OpenAPI description and sends them to
the running service over real HTTP: no request may produce a server error (5xx)."""

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error


from .serving_helpers import running_service
from .test_prefill_api import huiliu

pytestmark = pytest.mark.integration
# demo mode for the audit anchor only (a file beside the log); the key is a long one anyway
ENV = {**os.environ, "HUILIU_AUDIT_KEY": "openapi-fuzz-test-key-5c2e8a1f7b3d9046",
       "HUILIU_DEMO": "1", "HUILIU_API_RATE": "100000"}


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    """A service on an empty store (every subject unknown) with one WJW credential."""
    from pipelines.serving.store import build_store
    from tests.integration.reconcile_world import World

    home = tmp_path_factory.mktemp("fuzz")
    w = World(home / "warehouse.duckdb")
    w.reconcile()
    w.con.close()
    build_store(home / "warehouse.duckdb", home / "serving")
    key = huiliu(home, "consumers", "issue", "WJW")
    with running_service(home, ENV) as url:
        yield url, key


def test_no_generated_request_makes_a_server_error(running):
    from hypothesis import given

    url, key = running
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    operations = [r.ok() for r in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/prefill", "/v1/verify", "/v1/batch"}
    sent = []
    for op in operations:
        @given(case=op.as_strategy())
        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
        def call(case):
            r = case.call_and_validate(base_url=url,
                                       headers={"Authorization": f"Bearer {key}"},
                                       checks=[not_a_server_error])
            sent.append(r.status_code)
        call()
    assert len(sent) >= 20 * len(operations)  # the fuzzing really reached the service
    assert all(code < 500 for code in sent)
