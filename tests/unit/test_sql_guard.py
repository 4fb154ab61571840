"""The workbench's statement guard (pipelines/workbench/sql_guard.py): a corpus of statements that
must be refused with the right code, and realistic analytics queries that must pass with the tables
and columns they read."""

from __future__ import annotations

import pytest

from pipelines.workbench.sql_guard import Checked, Refused, check, duckdb_agrees
from sql_corpus import FORBIDDEN

pytestmark = pytest.mark.unit

POP = ["GMSFHM", "XM", "XBDM", "CSRQ", "HJDZ_XZQHDM"]
TIER = {
    "cur": {"ps_pop_basic": POP},
    "hist": {"ps_pop_basic": [*POP, "_valid_from", "_valid_to"]},
    "gold": {"person": ["entity_id", "sex", "birth_date", "hukou_division"]},
    "ops": {"batches": ["provider", "resource", "arrived_on"]},
    "meta": {"data_dictionary": ["table_name", "column_name"]},
}
CUR_ALL = tuple(sorted(f"cur.ps_pop_basic.{c}" for c in POP))
PERSON_ALL = tuple(sorted(f"gold.person.{c}" for c in TIER["gold"]["person"]))


# --- refused -------------------------------------------------------------------------------------



@pytest.mark.parametrize(("sql", "code"), FORBIDDEN,
                         ids=[f"{i}-{code}" for i, (_, code) in enumerate(FORBIDDEN)])
def test_forbidden(sql, code):
    with pytest.raises(Refused) as caught:
        check(sql, TIER)
    assert caught.value.code == code, caught.value
    assert caught.value.message.strip()


def test_corpus_is_large():
    assert len(FORBIDDEN) >= 60


def test_syntax_error_position():
    with pytest.raises(Refused) as caught:
        check("SELECT XM\nFROM cur.ps_pop_basic\nWHERE", TIER)
    assert (caught.value.code, caught.value.line, caught.value.column) == ("syntax", 3, 5)


def test_forbidden_function_position_on_line_two():
    sql = "SELECT XM,\n       getenv('HOME') AS h\nFROM cur.ps_pop_basic"
    with pytest.raises(Refused) as caught:
        check(sql, TIER)
    refused = caught.value
    assert (refused.code, refused.line, refused.column) == ("forbidden_function", 2, 8)
    assert "getenv" in caught.value.message


def test_typed_table_function_position():
    with pytest.raises(Refused) as caught:
        check("SELECT *\n  FROM read_csv('/etc/passwd')", TIER)
    assert (caught.value.line, caught.value.column) == (2, 8)


def test_second_statement_position():
    with pytest.raises(Refused) as caught:
        check("SELECT 1 -- x\n; DROP TABLE t", TIER)
    assert (caught.value.line, caught.value.column) == (2, 3)


def test_unknown_table_names_nearest_tables():
    with pytest.raises(Refused) as caught:
        check("SELECT * FROM cur.ps_pop_basics", TIER)
    assert caught.value.code == "unknown_table"
    assert "cur.ps_pop_basic" in caught.value.message
    assert (caught.value.line, caught.value.column) == (1, 15)


def test_not_read_only_position_after_leading_comment():
    with pytest.raises(Refused) as caught:
        check("-- tidy up\n  DROP TABLE cur.ps_pop_basic", TIER)
    assert (caught.value.code, caught.value.line, caught.value.column) == ("not_read_only", 2, 3)


def test_cte_seen_only_after_its_definition():
    # inside the first CTE `later` is not yet defined, so it is a (non-existent) table there
    sql = "WITH a AS (SELECT * FROM later), later AS (SELECT 1 AS x) SELECT * FROM a"
    with pytest.raises(Refused) as caught:
        check(sql, TIER)
    assert caught.value.code == "unknown_table"


# --- allowed -------------------------------------------------------------------------------------

ALLOWED = [
    "SELECT count(*) FROM cur.ps_pop_basic",
    "SELECT count(*) AS n FROM cur.ps_pop_basic;",
    "SELECT HJDZ_XZQHDM, count(*) AS n FROM cur.ps_pop_basic GROUP BY HJDZ_XZQHDM ORDER BY n DESC",
    "SELECT HJDZ_XZQHDM, strftime(CSRQ, '%Y-%m') AS month, count(*) FROM cur.ps_pop_basic "
    "GROUP BY ALL ORDER BY ALL",
    "SELECT date_trunc('month', arrived_on) AS month, provider, count(*) FROM ops.batches "
    "GROUP BY 1, 2",
    "SELECT g.hukou_division, count(DISTINCT h.GMSFHM) FROM hist.ps_pop_basic h "
    "JOIN gold.person g ON g.entity_id = h.GMSFHM WHERE h._valid_to IS NULL GROUP BY 1",
    "SELECT XM, CSRQ, row_number() OVER (PARTITION BY HJDZ_XZQHDM ORDER BY CSRQ) AS rn "
    "FROM cur.ps_pop_basic",
    "SELECT * FROM cur.ps_pop_basic "
    "QUALIFY row_number() OVER (PARTITION BY XBDM ORDER BY CSRQ) = 1",
    "WITH d AS (SELECT HJDZ_XZQHDM, count(*) AS n FROM cur.ps_pop_basic GROUP BY 1) "
    "SELECT * FROM d WHERE n > 10",
    "WITH ps_pop_basic AS (SELECT GMSFHM FROM hist.ps_pop_basic) SELECT count(*) FROM ps_pop_basic",
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 5) SELECT * FROM r",
    "SELECT GMSFHM FROM cur.ps_pop_basic UNION SELECT GMSFHM FROM hist.ps_pop_basic",
    "SELECT entity_id FROM gold.person EXCEPT SELECT GMSFHM FROM cur.ps_pop_basic",
    "DESCRIBE cur.ps_pop_basic",
    "DESCRIBE SELECT sex, count(*) FROM gold.person GROUP BY sex",
    "SUMMARIZE gold.person",
    "SUMMARIZE SELECT * FROM ops.batches",
    "EXPLAIN SELECT * FROM cur.ps_pop_basic WHERE XBDM = '1'",
    "EXPLAIN ANALYZE SELECT count(*) FROM gold.person",
    "FROM cur.ps_pop_basic LIMIT 5",
    "SELECT XM FROM ps_pop_basic WHERE XBDM = '2'",
    "SELECT * FROM range(10)",
    "SELECT x FROM generate_series(1, 12) AS t(x)",
    "SELECT unnest(['a', 'b']) AS letter",
    "SELECT * FROM unnest([1, 2, 3]) AS t(x)",
    "SELECT upper(XM), length(XM), substr(GMSFHM, 1, 6), concat_ws('-', XBDM, HJDZ_XZQHDM) "
    "FROM cur.ps_pop_basic",
    "SELECT CAST(CSRQ AS DATE), TRY_CAST(XBDM AS INTEGER), CSRQ::VARCHAR FROM cur.ps_pop_basic",
    "SELECT sex, count(*) FILTER (WHERE birth_date < DATE '1960-01-01') FROM gold.person "
    "GROUP BY sex",
    "SELECT * FROM (SELECT XM, XBDM FROM cur.ps_pop_basic) AS s WHERE s.XBDM = '1'",
    "SELECT p.* FROM gold.person p WHERE EXISTS "
    "(SELECT 1 FROM cur.ps_pop_basic c WHERE c.GMSFHM = p.entity_id)",
    "SELECT table_name, column_name FROM meta.data_dictionary WHERE table_name = 'ps_pop_basic'",
    "SELECT version(), current_database()",
    "VALUES (1, 'a'), (2, 'b')",
    "PIVOT cur.ps_pop_basic ON XBDM USING count(*)",
    "SELECT 'a; DROP TABLE t' AS s",
    "SELECT count(*) FROM gold.person; -- a comment after the only statement",
    "SELECT count(*) FROM gold.person;;",
    "SELECT /* a ; comment */ 1",
    "SELECT * FROM \"cur\".\"ps_pop_basic\" USING SAMPLE 10%",
    "select xm from CUR.PS_POP_BASIC",
]


@pytest.mark.parametrize("sql", ALLOWED)
def test_allowed(sql):
    assert isinstance(check(sql, TIER), Checked)


def test_allowed_list_is_large():
    assert len(ALLOWED) >= 25


@pytest.mark.parametrize(("sql", "kind", "tables", "columns"), [
    ("SELECT count(*) FROM cur.ps_pop_basic", "select", ("cur.ps_pop_basic",), CUR_ALL),
    ("SELECT * FROM cur.ps_pop_basic", "select", ("cur.ps_pop_basic",), CUR_ALL),
    ("FROM cur.ps_pop_basic LIMIT 5", "select", ("cur.ps_pop_basic",), CUR_ALL),
    ("SELECT XM FROM ps_pop_basic WHERE XBDM = '2'", "select", ("cur.ps_pop_basic",),
     ("cur.ps_pop_basic.XBDM", "cur.ps_pop_basic.XM")),
    ("select xm from CUR.PS_POP_BASIC", "select", ("cur.ps_pop_basic",), ("cur.ps_pop_basic.XM",)),
    ("SELECT g.sex, count(h.GMSFHM) FROM hist.ps_pop_basic h JOIN gold.person g "
     "ON g.entity_id = h.GMSFHM GROUP BY g.sex", "select", ("gold.person", "hist.ps_pop_basic"),
     ("gold.person.entity_id", "gold.person.sex", "hist.ps_pop_basic.GMSFHM")),
    ("SELECT p.*, c.XM FROM gold.person p JOIN cur.ps_pop_basic c ON c.GMSFHM = p.entity_id",
     "select", ("cur.ps_pop_basic", "gold.person"),
     ("cur.ps_pop_basic.GMSFHM", "cur.ps_pop_basic.XM", *PERSON_ALL)),
    ("WITH ps_pop_basic AS (SELECT GMSFHM FROM hist.ps_pop_basic) "
     "SELECT count(*) FROM ps_pop_basic",
     "select", ("hist.ps_pop_basic",), ("hist.ps_pop_basic.GMSFHM",)),
    ("SELECT provider FROM ops.batches UNION SELECT table_name FROM meta.data_dictionary", "select",
     ("meta.data_dictionary", "ops.batches"),
     ("meta.data_dictionary.table_name", "ops.batches.provider")),
    ("DESCRIBE cur.ps_pop_basic", "describe", ("cur.ps_pop_basic",), CUR_ALL),
    ("SUMMARIZE gold.person", "summarize", ("gold.person",), PERSON_ALL),
    ("EXPLAIN SELECT sex FROM gold.person", "explain", ("gold.person",), ("gold.person.sex",)),
    ("SELECT * FROM range(10)", "select", (), ()),
])
def test_tables_and_columns(sql, kind, tables, columns):
    assert check(sql, TIER) == Checked(kind, tables, columns)


def test_search_path_order_decides_unqualified_names():
    checked = check("SELECT XM FROM ps_pop_basic", TIER, search_path=("hist", "cur"))
    assert checked.tables == ("hist.ps_pop_basic",)
    with pytest.raises(Refused) as caught:
        check("SELECT * FROM person", TIER, search_path=("cur",))
    assert caught.value.code == "unknown_table"
    assert "gold.person" in caught.value.message


@pytest.mark.parametrize(("sql", "code"), [
    ("SELECT 1; SELECT 2", "multiple_statements"),
    ("CHECKPOINT", "not_read_only"),
    ("SELECT 1 FROM", "syntax"),
])
def test_duckdb_parser_is_a_second_opinion(sql, code):
    # DuckDB runs the raw text, so its own parser must agree there is one read statement
    with pytest.raises(Refused) as caught:
        duckdb_agrees(sql)
    assert caught.value.code == code
