"""The analysts' workbench as its users meet it: a real `huiliu workbench serve` over the served
world's tiers, analysts issued with the CLI, SQL over HTTP and through `huiliu sql`. Forbidden
statements are refused before anything runs, and audited; the statistical tier never shows a
citizen ID or a name in clear; a long query stops at its limit while another analyst's count
answers; every query is in the audit log, which verifies intact."""

import io
import os
import random
import subprocess
import sys
import time

import duckdb
import orjson
import pyarrow.parquet as pq
import pytest

from pipelines.serving.audit_lines import parse_line, read_lines
from identifier_scan import valid_citizen_ids
from sql_corpus import FORBIDDEN

from .serving_helpers import huiliu, running_service
from .workbench_helpers import Analyst

pytestmark = pytest.mark.integration

@pytest.fixture(scope="module")
def workbench(served_sim_world, tmp_path_factory):
    s, _, service_env = served_sim_world
    env = {**os.environ, **service_env, "HUILIU_WORKBENCH_TIMEOUT_SECONDS": "4",
           "HUILIU_WORKBENCH_WORKERS": "2"}
    home = s.home
    huiliu(home, env, "workbench", "build")
    creds = {
        "li_na": huiliu(home, env, "analysts", "issue", "li_na", "--department", "SJJ"),
        "zhao_lei": huiliu(home, env, "analysts", "issue", "zhao_lei", "--department", "SJJ"),
        "wang_fang": huiliu(home, env, "analysts", "issue", "wang_fang", "--department", "MZJ",
                            "--tier", "statistical", "--tier", "identified", "--purpose",
                            "ANALYTICS", "--purpose", "SOCIAL_ASSIST"),
    }
    with duckdb.connect(str(s.published_current.resolve()), read_only=True) as con:
        names = {n for (n,) in con.execute("SELECT DISTINCT XM FROM hist.ps_pop_basic "
                                           "WHERE length(XM) >= 2").fetchall()}
        persons = con.execute("SELECT count(*) FROM cur.ps_pop_basic").fetchone()[0]
    with running_service(home, env, ("workbench", "serve")) as url:
        yield {"url": url, "creds": creds, "env": env, "home": home, "names": names,
               "persons": persons}


def workbench_entries(home) -> list[dict]:
    out = []
    for _, line in read_lines(home / "serving" / "audit.jsonl"):
        e = parse_line(line)
        detail = orjson.loads(e["detail"]) if e and "detail" in e else {}
        if detail.get("door") == "workbench":  # the log is shared with the other doors
            out.append({**e, **detail})
    return out


def test_an_analyst_counts_persons_on_the_statistical_tier(workbench):
    a = Analyst(workbench["url"], workbench["creds"]["li_na"])
    assert a.me["tier"] == "statistical" and a.me["department"] == "SJJ"
    st, rows = a.run("SELECT count(*) AS persons FROM cur.ps_pop_basic")
    assert st["state"] == "done" and rows == [[workbench["persons"]]]
    entry = [e for e in workbench_entries(workbench["home"]) if e["case_id"] == st["id"]]
    assert len(entry) == 1 and entry[0]["outcome"] == "done" and entry[0]["rows"] == 1
    assert entry[0]["consumer"] == "SJJ" and entry[0]["purpose"] == "ANALYTICS"
    assert "cur.ps_pop_basic" in entry[0]["tables"]


def test_every_forbidden_statement_is_refused_before_it_runs_and_audited(workbench, tmp_path):
    a = Analyst(workbench["url"], workbench["creds"]["zhao_lei"])
    before = len(workbench_entries(workbench["home"]))
    target = tmp_path / "leak.csv"
    corpus = [sql for sql, _ in FORBIDDEN] + [f"COPY (SELECT * FROM cur.ps_pop_basic) TO '{target}'"]
    assert len(corpus) >= 50
    for sql in corpus:
        r = a.submit(sql)
        assert r.status_code == 400 and r.json()["error"] == "refused", (sql, r.text)
        assert r.json()["message"]
    assert not target.exists()
    refused = [e for e in workbench_entries(workbench["home"])[before:]
               if e["analyst"] == "zhao_lei" and e["outcome"] == "refused"]
    assert [e["sql"] for e in refused] == corpus


def test_the_statistical_tier_never_shows_an_id_or_a_name_in_clear(workbench):
    """Over 200 generated queries (every table whole, string functions, casts, unions, joins),
    every value shown is scanned for a valid citizen ID and for the node's full names."""
    a = Analyst(workbench["url"], workbench["creds"]["li_na"])
    tables = {(t["schema"], t["name"]): [c["name"] for c in t["columns"]]
              for t in a.http.get("/api/schema").json()["tables"]}
    rng = random.Random(15)
    queries = []
    for (schema, name), cols in tables.items():
        queries.append(f"SELECT * FROM {schema}.{name}")
        queries.append(f"SELECT * FROM {schema}.{name} ORDER BY random() LIMIT 300")
        for c in cols:
            queries.append(f'SELECT DISTINCT CAST("{c}" AS VARCHAR) AS v FROM {schema}.{name}')
        text = " || '|' || ".join(f'coalesce(CAST("{c}" AS VARCHAR), \'\')' for c in cols)
        queries.append(f"SELECT upper({text}) AS t, reverse({text}) AS r FROM {schema}.{name}")
    strings = [(s, n, c) for (s, n), cols in tables.items() for c in cols]
    for _ in range(60):
        (s1, n1, c1), (s2, n2, c2) = rng.sample(strings, 2)
        queries.append(f'SELECT CAST("{c1}" AS VARCHAR) AS v FROM {s1}.{n1} UNION '
                       f'SELECT CAST("{c2}" AS VARCHAR) FROM {s2}.{n2}')
    queries += [
        "SELECT p.*, g.* FROM cur.ps_pop_basic p JOIN gold.person g ON g.citizen_id = p.GMSFHM",
        "SELECT h.*, m.* FROM hist.ps_pop_basic h JOIN cur.ps_hukou_move m USING (GMSFHM)",
        "SELECT substr(GMSFHM, 2), left(XM, 3), string_split(XM, '') FROM cur.ps_pop_basic",
        "SELECT o.* FROM ops.objections o",
        "SELECT * FROM meta.data_dictionary"]
    assert len(queries) >= 200
    shown = 0
    for sql in queries:
        st, rows = a.run(sql)
        assert st["state"] == "done", (sql, st)
        text = "\n".join("\t".join("" if v is None else str(v) for v in r) for r in rows)
        assert valid_citizen_ids(text) == [], sql
        clear = [n for n in workbench["names"] if n in text]
        assert clear == [], (sql, clear[:5])
        shown += len(rows)
    assert shown > 10_000


def test_a_long_query_stops_at_its_limit_while_another_analysts_count_answers(workbench):
    slow, quick = (Analyst(workbench["url"], workbench["creds"][n]) for n in ("li_na", "zhao_lei"))
    r = slow.submit("SELECT count(*) FROM range(10000000000000) a, range(1000) b "
                    "WHERE (a.range * b.range) % 7 = 3")
    assert r.status_code == 202
    time.sleep(0.5)
    st, rows = quick.run("SELECT count(*) FROM gold.person")
    assert st["state"] == "done" and rows[0][0] > 0
    assert slow.http.get(f"/api/queries/{r.json()['id']}").json()["state"] == "running"
    long = slow.wait(r.json()["id"], timeout=60)
    assert long["state"] == "timeout" and "time" in long["error"]["message"]
    outcomes = {e["case_id"]: e["outcome"] for e in workbench_entries(workbench["home"])}
    assert outcomes[r.json()["id"]] == "timeout" and outcomes[st["id"]] == "done"


def test_a_query_can_be_cancelled(workbench):
    a = Analyst(workbench["url"], workbench["creds"]["zhao_lei"])
    r = a.submit("SELECT count(*) FROM range(10000000000000) a, range(1000) b "
                 "WHERE (a.range * b.range) % 7 = 3")
    time.sleep(0.3)
    assert a.http.post(f"/api/queries/{r.json()['id']}/cancel").status_code == 200
    assert a.wait(r.json()["id"], timeout=30)["state"] == "cancelled"


def test_the_identified_tier_shows_what_the_list_grants_in_clear(workbench):
    clear = Analyst(workbench["url"], workbench["creds"]["wang_fang"], "SOCIAL_ASSIST")
    assert clear.me["tier"] == "identified"
    st, rows = clear.run("SELECT GMSFHM, XM, BZJE FROM cur.ca_subsistence LIMIT 20")
    assert st["state"] == "done" and rows
    assert all(valid_citizen_ids(r[0]) == [r[0]] for r in rows)  # in clear, as granted
    # the statistical tier of the same department has no subsistence records at all (C, not
    # granted to MZJ for ANALYTICS), and refuses to name them
    stats = Analyst(workbench["url"], workbench["creds"]["wang_fang"], "ANALYTICS")
    r = stats.submit("SELECT GMSFHM FROM cur.ca_subsistence")
    assert r.status_code == 400 and "ca_subsistence" in r.json()["message"]


def test_a_purpose_or_tier_not_granted_is_refused_at_login(workbench):
    import httpx

    r = httpx.post(f"{workbench['url']}/api/login",
                   json={"credential": workbench["creds"]["li_na"], "purpose": "SOCIAL_ASSIST"})
    assert r.status_code == 403 and "ANALYTICS" in r.json()["message"]
    r = httpx.post(f"{workbench['url']}/api/login",
                   json={"credential": workbench["creds"]["li_na"] + "x", "purpose": "ANALYTICS"})
    assert r.status_code == 401


def test_exports_are_csv_with_a_bom_and_parquet_and_are_audited(workbench):
    a = Analyst(workbench["url"], workbench["creds"]["li_na"])
    st, _ = a.run("SELECT XM AS surname, HJDZ_XZQHDM FROM cur.ps_pop_basic ORDER BY 1, 2")
    assert st["truncated"] and st["row_count"] == 1000  # shown: the display cap
    r = a.http.get(f"/api/queries/{st['id']}/export", params={"format": "csv"})
    assert r.status_code == 200 and r.content.startswith(b"\xef\xbb\xbf")
    lines = r.content[3:].decode("utf-8").splitlines()
    assert lines[0] == '"surname","HJDZ_XZQHDM"' and len(lines) == workbench["persons"] + 1
    assert lines[1].split(",")[0].strip('"').endswith("*")
    r = a.http.get(f"/api/queries/{st['id']}/export", params={"format": "parquet"})
    assert pq.read_table(io.BytesIO(r.content)).num_rows == workbench["persons"]
    exported = [e for e in workbench_entries(workbench["home"])
                if e["case_id"].startswith(st["id"] + "-export-")]
    assert [e["outcome"] for e in exported] == ["exported", "exported"]
    assert {e["export"] for e in exported} == {"csv", "parquet"}


def test_huiliu_sql_runs_one_shot_with_the_same_rules(workbench):
    env = {**workbench["env"], "HUILIU_ANALYST_CREDENTIAL": workbench["creds"]["li_na"]}
    base = [sys.executable, "-m", "pipelines.cli", "sql", "--url", workbench["url"]]
    out = subprocess.run([*base, "-e", "SELECT XBDM, count(*) AS n FROM cur.ps_pop_basic "
                          "GROUP BY XBDM ORDER BY XBDM", "--format", "csv"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == "XBDM,n" and len(out.stdout.splitlines()) >= 3
    out = subprocess.run([*base, "-e", "SELECT * FROM read_csv('/etc/passwd')"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "refused" in out.stdout and "Traceback" not in out.stderr
    out = subprocess.run([*base, "-e", "SELECT XM FROM cur.ps_pop_basic LIMIT 3"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "3 rows" in out.stdout


def test_governance_staff_list_activity_and_the_log_verifies_intact(workbench):
    a = Analyst(workbench["url"], workbench["creds"]["zhao_lei"])
    a.run("SELECT HJDZ_XZQHDM, count(*) FROM cur.ps_pop_basic GROUP BY ALL")
    listed = huiliu(workbench["home"], workbench["env"], "audit", "queries", "--analyst",
                    "zhao_lei", "--column", "cur.ps_pop_basic.HJDZ_XZQHDM")
    assert "zhao_lei" in listed and "HJDZ_XZQHDM" in listed and "li_na" not in listed
    assert "intact" in huiliu(workbench["home"], workbench["env"], "audit", "verify")


def test_a_revoked_analyst_is_logged_out_at_the_next_request(workbench):
    cred = huiliu(workbench["home"], workbench["env"], "analysts", "issue", "temp_analyst",
                  "--department", "SJJ")
    a = Analyst(workbench["url"], cred)
    assert a.run("SELECT 1")[0]["state"] == "done"
    huiliu(workbench["home"], workbench["env"], "analysts", "revoke", "temp_analyst")
    assert a.submit("SELECT 1").status_code == 401


def test_a_query_duckdb_cannot_bind_fails_with_where_the_problem_is(workbench):
    a = Analyst(workbench["url"], workbench["creds"]["li_na"])
    st, _ = a.run("SELECT XBDM,\n  no_such_column FROM cur.ps_pop_basic")
    assert st["state"] == "failed" and "no_such_column" in st["error"]["message"]
    assert (st["error"]["line"], st["error"]["column"]) == (2, 3)


def test_saved_queries_are_private_or_shared_with_the_department(workbench):
    li, zhao = (Analyst(workbench["url"], workbench["creds"][n]) for n in ("li_na", "zhao_lei"))
    other_department = Analyst(workbench["url"], workbench["creds"]["wang_fang"], "ANALYTICS")
    body = {"sql": "SELECT XBDM, count(*) FROM cur.ps_pop_basic GROUP BY 1", "chart": None}
    shared = li.http.post("/api/saved", json={**body, "name": "by sex", "shared": True}).json()
    private = li.http.post("/api/saved", json={**body, "name": "mine", "shared": False}).json()

    def names(a):
        return {s["id"] for s in a.http.get("/api/saved").json()["saved"]}

    assert {shared["id"], private["id"]} <= names(li)
    assert shared["id"] in names(zhao) and private["id"] not in names(zhao)
    assert not {shared["id"], private["id"]} & names(other_department)
    # the node's own analyses are there for everyone whose tier holds their tables
    assert {"life-events-month", "backflow-freshness", "open-objections"} <= names(zhao)
    assert zhao.http.delete(f"/api/saved/{shared['id']}").status_code == 404  # not the owner
    assert li.http.delete(f"/api/saved/{shared['id']}").status_code == 200


def test_a_quick_query_is_answered_by_its_submission(workbench):
    a = Analyst(workbench["url"], workbench["creds"]["li_na"])
    r = a.http.post("/api/queries", json={"sql": "SELECT 42 AS answer", "wait": 10, "rows": 10})
    assert r.status_code == 200 and r.json()["state"] == "done" and r.json()["rows"] == [[42]]
    assert a.http.get(f"/api/queries/{r.json()['id']}/rows").json()["rows"] == [[42]]


def test_statistics_never_come_with_names_in_clear(workbench):
    """ANALYTICS is served by the statistical tier alone, even to an analyst who also holds the
    identified tier for a case purpose."""
    import httpx

    r = httpx.post(f"{workbench['url']}/api/login", json={
        "credential": workbench["creds"]["wang_fang"], "purpose": "ANALYTICS",
        "tier": "identified"})
    assert r.status_code == 403


def test_a_query_is_seen_only_in_the_session_that_ran_it(workbench):
    clear = Analyst(workbench["url"], workbench["creds"]["wang_fang"], "SOCIAL_ASSIST")
    stats = Analyst(workbench["url"], workbench["creds"]["wang_fang"], "ANALYTICS")
    st, _ = clear.run("SELECT GMSFHM FROM cur.ca_subsistence LIMIT 5")
    for path in (f"/api/queries/{st['id']}", f"/api/queries/{st['id']}/rows",
                 f"/api/queries/{st['id']}/export"):
        assert stats.http.get(path).status_code == 404


def test_a_rotated_credential_ends_the_sessions_opened_with_the_old_one(workbench):
    cred = huiliu(workbench["home"], workbench["env"], "analysts", "issue", "rot_analyst",
                  "--department", "SJJ")
    a = Analyst(workbench["url"], cred)
    assert a.run("SELECT 1")[0]["state"] == "done"
    new = huiliu(workbench["home"], workbench["env"], "analysts", "rotate", "rot_analyst")
    assert a.submit("SELECT 1").status_code == 401
    assert Analyst(workbench["url"], new).run("SELECT 1")[0]["state"] == "done"
