"""The reconciliation's declarative parts (mention sources, golden-record sources) name real
resources, roles and fields: every generated query binds against an empty warehouse."""

import duckdb
import pytest

from pipelines.catalog.model import catalog
from pipelines.governance.contracts.sql_macros import MACROS
from pipelines.identity import golden
from pipelines.identity.mentions import sources
from pipelines.identity.reconcile import ensure_identity_schema
from pipelines.warehouse.writer import ensure_schema

pytestmark = pytest.mark.unit
CAT = catalog()


@pytest.fixture(scope="module")
def con():
    c = duckdb.connect()
    ensure_schema(c, CAT)
    ensure_identity_schema(c)
    for m in MACROS:
        c.execute(m)
    c.execute("CREATE TEMP TABLE _affected (entity_id VARCHAR)")
    for r in CAT.resources.values():  # what build_golden gathers for a run after changes
        c.execute(f"CREATE TEMP TABLE _aff_{r.key} AS SELECT * FROM cur.{r.key} LIMIT 0")
    c.execute("CREATE MACRO entity_of(m) AS (SELECT entity_id FROM ident.person_links "
              "WHERE mention_id = m)")
    yield c
    c.close()


def test_every_mention_source_names_a_resource_and_its_fields():
    roles = {(s["resource"], s["role"]) for s in sources()}
    assert len(roles) == len(sources())  # one entry per resource and role
    for s in sources():
        fields = {f.code for f in CAT.resource(s["resource"]).stored_fields}
        for k in ("doc_no", "name", "doc_type"):
            if s.get(k):
                assert s[k] in fields, (s, k)


@pytest.mark.parametrize("kind, field", [(k, f) for k, fs in golden.golden_config().items()
                                         for f in fs])
def test_every_golden_source_binds_and_names_a_known_mention_role(con, kind, field):
    spec = golden.golden_config()[kind][field]
    roles = {(s["resource"], s["role"]) for s in sources()}
    for src in spec["from"]:
        if kind == "person":
            assert (src["resource"], src["role"]) in roles, src
        assert CAT.resource(src["resource"]).provider in spec["authority"], src
        for only_affected in (False, True):
            con.execute("EXPLAIN " + golden._candidate_sql(  # noqa: SLF001 - the generated SQL
                CAT, kind, field, spec["authority"], src, only_affected))
