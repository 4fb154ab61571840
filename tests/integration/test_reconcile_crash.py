"""`kill -9` in the middle of a reconcile run, then a rerun (issue 12 §2): the entity ids persons
already had are kept, no entity is left active without a unit, and the end state is the state of
a run no crash interrupted.

The crash run is a child process that SIGKILLs itself at a named point of the run: after a
stage, or just before a given statement (the patches live in the child's driver below, so the
product carries no crash hook). The rerun and the comparison happen here.
"""

import datetime as dt
import pprint
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipelines.catalog.identifiers import make_uscc
from pipelines.identity.reconcile import ensure_identity_schema, reconcile
from pipelines.warehouse.writer import writer

from .reconcile_world import CAT, T0, World, pid

pytestmark = pytest.mark.integration

DAY1, DAY2 = dt.date(2026, 10, 2), dt.date(2026, 10, 3)

# The child: open the warehouse as the CLI does and reconcile, dying at `point`, which is
# "after:<module>.<function>" (once it returns), "at:<module>.<function>" (when it is called) or
# "sql:<statement start>" (before the first statement that starts so). The kill is SIGKILL:
# no rollback, no close, no atexit.
DRIVER = r"""
import datetime as dt, functools, importlib, os, signal, sys
from pathlib import Path
from pipelines.catalog.model import catalog
from pipelines.identity.reconcile import reconcile
from pipelines.warehouse.writer import ensure_schema, writer

path, point, today, reports = sys.argv[1:5]
how, _, what = point.partition(":")

def die():
    os.kill(os.getpid(), signal.SIGKILL)

if how in ("after", "at"):
    module, name = what.rsplit(".", 1)
    module = importlib.import_module(module)
    fn = getattr(module, name)
    @functools.wraps(fn)
    def patched(*a, **kw):
        if how == "at":
            die()
        fn(*a, **kw)
        die()
    setattr(module, name, patched)

class Con:
    # the writer's connection, dying before the statement named by "sql:"
    def __init__(self, con):
        self._con = con
    def __getattr__(self, name):
        return getattr(self._con, name)
    def execute(self, sql, *a, **kw):
        if how == "sql" and " ".join(sql.split()).startswith(what):
            die()
        return self._con.execute(sql, *a, **kw)

cat = catalog()
with writer(Path(path)) as con:
    ensure_schema(con, cat)
    reconcile(Con(con), cat, dt.date.fromisoformat(today), Path(reports))
"""

POINTS = {
    "mentions": "after:pipelines.identity.reconcile.build_mentions",
    # entities and their events written, the registry not yet: the incident of issue 12
    "entities": "sql:INSERT INTO ident.registry",
    "person_links": "after:pipelines.identity.linking.link_persons",
    "enterprises": "after:pipelines.identity.linking.link_enterprises",
    "golden": "after:pipelines.identity.golden.build_golden",
    "conflicts": "after:pipelines.identity.conflicts.detect",  # objections raised
    "watermarks": "after:pipelines.identity.reconcile._advance_watermarks",
    "runs_row": "sql:INSERT INTO ident.runs",
    "commit": "sql:COMMIT",  # everything written, not yet committed
    "report": "at:pipelines.reports.conflicts_html.render_conflict_report",
}

WANG, LI = pid(dt.date(1985, 3, 14), 11), pid(dt.date(1987, 6, 2), 22)
NAMES = ["陈浩然", "刘洋", "杨帆", "黄磊", "周敏", "吴静", "徐强", "孙丽", "马超", "朱琳", "胡军",
         "郭颖", "何平", "高峰", "林娜", "罗勇"]
BORN = [dt.date(1960 + i, 1 + i % 12, 1 + i) for i in range(len(NAMES))]
PEOPLE = [(no, n, "1" if int(no[16]) % 2 else "2", born)  # the sex the ID number states
          for no, n, born in ((pid(b, 30 + i), n, b) for i, (n, b) in enumerate(zip(NAMES, BORN)))]


def _registration(w: World, hgbm: str, status: str, gxsj) -> None:
    w.put("CU_ENT_REG", gxsj, HGBM=hgbm, TYSHXYDM=make_uscc("9", "1", "500116", "MA5U0001"),
          QYMC="重庆某贸易有限公司", ZCHGDM="8001", QYLXDM="6", XYZD="282", XYDJDM="CG",
          XYRDRQ=dt.date(2026, 4, 1), BARQ=dt.date(2015, 3, 2), YXQZ=dt.date(2030, 1, 1),
          ZS_XZQHDM="500116", FDDBR_XM="王建国", FDDBR_ZJHM=WANG, BAZTDM=status)


def day1(w: World) -> None:
    """Persons linked by key, by the model and not at all; an enterprise; a conflict."""
    w.person(WANG, "王建国", "1", dt.date(1985, 3, 14), marital="20")
    w.person(LI, "李秀英", "2", dt.date(1987, 6, 2), marital="20")
    for no, name, sex, born in PEOPLE[:12]:
        w.person(no, name, sex, born)
    w.marriage("M1", (WANG, "王建国"), (LI, "李秀英"))
    w.marriage("M2", ("", "王建郭"), (LI, "李秀英"))  # homophone, no ID: the model links it
    w.marriage("M3", ("", "张三丰"), (PEOPLE[1][0], "刘洋"))  # nobody known: an entity of its own
    w.marriage("M4", (PEOPLE[2][0], "杨帆"), ("E1234567", "SMITH ANNA", "2"))  # a passport
    no, name, sex, _ = PEOPLE[3]
    w.cremation("H1", no, name, sex, dt.date(2026, 5, 1), dt.date(2026, 5, 3))
    _registration(w, "5001960001", "1", T0 - dt.timedelta(days=200))


def day2(w: World) -> None:
    """New persons, a merge, a deletion, a new conflict (and its objection), a resolved one."""
    later = T0 + dt.timedelta(days=1)
    for no, name, sex, born in PEOPLE[12:]:
        w.person(no, name, sex, born, gxsj=later)
    w.marriage("M3", ("", "王建国"), (PEOPLE[1][0], "刘洋"), gxsj=later)  # the loner is 王建国
    w.marriage("M5", (PEOPLE[12][0], NAMES[12]), (PEOPLE[13][0], NAMES[13]), gxsj=later)
    w.delete("CA_MARRIAGE", later, YWBH="M4")
    no, name, sex, _ = PEOPLE[4]
    w.cremation("H2", no, name, sex, dt.date(2026, 6, 1), dt.date(2026, 6, 3), gxsj=later)
    no, name, sex, born = PEOPLE[3]
    w.person(no, name, sex, born, status="1", death=dt.date(2026, 5, 1), gxsj=later)
    _registration(w, "4403960002", "2", T0 - dt.timedelta(days=60))


def state(con) -> dict:
    """What a run leaves, without run ids and times."""
    q = {
        "mentions": "SELECT * FROM ident.person_mentions ORDER BY mention_id",
        "name_forms": "SELECT * FROM ident.name_forms ORDER BY name_raw",
        "links": """SELECT mention_id, entity_id, method, round(match_probability, 9),
            model_version FROM ident.person_links ORDER BY ALL""",
        "registry": """SELECT kind, unit, entity_id, root, method, round(p, 9)
            FROM ident.registry ORDER BY ALL""",
        "entities": "SELECT entity_id, kind, state, successor FROM ident.entities ORDER BY ALL",
        "events": """SELECT kind, entity_id, other_entity_id, units, reason
            FROM ident.entity_events ORDER BY ALL""",
        "gold": """SELECT * EXCLUDE (valid_from, valid_to) FROM gold.field_values
            WHERE valid_to IS NULL ORDER BY ALL""",
        "gold_closed": "SELECT count(*) FROM gold.field_values WHERE valid_to IS NOT NULL",
        "conflicts": "SELECT * FROM gold.conflicts ORDER BY conflict_id",
        "objections": """SELECT objection_id, resource, record_key, field, status
            FROM ops.objections ORDER BY ALL""",
        "watermarks": "SELECT * FROM ident.watermarks ORDER BY ALL",
        "runs": """SELECT mode, changed_records, mentions, entities, key_links,
            probabilistic_links, events, conflicts_open FROM ident.runs ORDER BY started""",
    }
    return {k: con.execute(sql).fetchall() for k, sql in q.items()}


def differences(got: dict, want: dict) -> dict:
    """Per table, the rows only the rerun has (+) and only the uninterrupted run has (-)."""
    out = {}
    for k, rows in want.items():
        extra = [r for r in got[k] if r not in rows]
        missing = [r for r in rows if r not in got[k]]
        if extra or missing or len(got[k]) != len(rows):
            out[k] = {"+": extra, "-": missing, "rows": (len(got[k]), len(rows))}
    return out


def links_of(con) -> dict[str, str]:
    return dict(con.execute("SELECT mention_id, entity_id FROM ident.person_links").fetchall())


def orphans(con) -> list[str]:
    """Active entities no unit belongs to (the 22,655 of issue 12)."""
    return [e for (e,) in con.execute("""SELECT entity_id FROM ident.entities
        WHERE state = 'active' AND entity_id NOT IN (SELECT entity_id FROM ident.registry)
        ORDER BY 1""").fetchall()]


@dataclass(frozen=True)
class Case:
    warehouse: Path  # to copy and crash in
    before: dict  # mention -> entity before the crashed run
    reference: dict  # the state an uninterrupted run leaves
    reference_links: dict
    reference_rerun: dict  # ... and a second run after it, which finds nothing changed


@pytest.fixture(scope="module")
def worlds(tmp_path_factory) -> dict[str, Case]:
    """Two warehouses to crash in: `first` never reconciled (every person new: the incident),
    `changes` reconciled on day 1 with day 2's records added since."""
    root = tmp_path_factory.mktemp("worlds")
    out = {}
    for name in ("first", "changes"):
        w = World(root / f"{name}.duckdb")
        day1(w)
        ensure_identity_schema(w.con)
        if name == "changes":
            reconcile(w.con, CAT, DAY1)
            day2(w)
        before = links_of(w.con)
        w.con.close()
        ref = root / f"{name}-reference.duckdb"
        shutil.copy(root / f"{name}.duckdb", ref)
        with writer(ref) as con:
            reconcile(con, CAT, DAY2, root / "reports")
            reference, links = state(con), links_of(con)
            reconcile(con, CAT, DAY2, root / "reports")
            out[name] = Case(root / f"{name}.duckdb", before, reference, links, state(con))
    return out


def crash(path, point: str, reports) -> None:
    proc = subprocess.run([sys.executable, "-c", DRIVER, str(path), point, DAY2.isoformat(),
                           str(reports)], capture_output=True, timeout=120)
    # killed where asked: a run that got past its point (or failed) proves nothing
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()


# every point in a run after changes; in a first run (every person new), the incident's point
# and a few around it (each case is a child process: keep the file near a minute)
CASES = [("changes", p) for p in POINTS] + [
    ("first", p) for p in ("entities", "person_links", "conflicts", "commit")]


@pytest.mark.parametrize(("world", "stage"), CASES, ids=[f"{w}-{p}" for w, p in CASES])
def test_kill_minus_9_then_rerun_keeps_the_ids_and_matches_an_uninterrupted_run(
        worlds, tmp_path, world, stage):
    case = worlds[world]
    path = tmp_path / "wh.duckdb"
    shutil.copy(case.warehouse, path)
    crash(path, POINTS[stage], tmp_path / "reports")

    with writer(path) as con:
        reconcile(con, CAT, DAY2, tmp_path / "reports")  # the rerun
        after = links_of(con)
        # (a) every person keeps the id they had before the crashed run (unless the
        # uninterrupted run moved them too), and everyone gets the id it would have given
        renumbered = {m: (e, after.get(m)) for m, e in case.before.items()
                      if after.get(m) != case.reference_links.get(m)}
        assert renumbered == {}, f"{len(renumbered)} persons renumbered"
        wrong = {m for m, e in case.reference_links.items() if after.get(m) != e}
        assert not wrong, f"{len(wrong)} of {len(after)} mentions not in their entity"
        # (b) no active entity without a unit
        lost = orphans(con)
        assert not lost, f"{len(lost)} active entities without a unit"
        got = state(con)
    # (c) the state of a run without a crash; past the commit, of that run and a rerun
    want = case.reference_rerun if stage == "report" else case.reference
    diff = differences(got, want)
    assert not diff, "tables that differ: " + ", ".join(
        f"{k} (+{len(d['+'])} -{len(d['-'])}, rows {d['rows']})" for k, d in diff.items()
    ) + "\n" + pprint.pformat(diff, width=100)
    assert (tmp_path / "reports" / "index.html").exists()


def test_the_reference_worlds_exercise_what_a_crash_can_break(worlds):
    """The worlds are worth crashing in: the run crashed creates entities and merges two, links
    by key and by the model, opens a conflict (raising an objection) and resolves another."""
    first, changes = worlds["first"].reference, worlds["changes"].reference
    before, links = worlds["changes"].before, worlds["changes"].reference_links
    assert first["runs"][-1][0] == "full" and len(first["entities"]) > 15
    kinds = {e[0] for e in changes["events"]}
    assert {"created", "merged"} <= kinds
    assert changes["runs"][-1][0] == "changes"
    assert any(m == "probabilistic" for _, _, m, _, _ in changes["links"])
    assert {c[-1] for c in changes["conflicts"]} == {"open", "resolved"}
    assert len([o for o in changes["objections"] if o[0].startswith(f"YY{DAY2:%Y%m%d}")]) == 2
    assert before and any(links.get(m) != e for m, e in before.items())  # the merge moved one


def test_a_failing_run_leaves_the_last_runs_state_and_the_connection_usable(
        worlds, tmp_path, monkeypatch):
    """An error (not a kill) halfway: rolled back, and the next run on the same connection
    completes as if the failed one had never been."""
    from pipelines.identity import conflicts

    case = worlds["changes"]
    path = tmp_path / "wh.duckdb"
    shutil.copy(case.warehouse, path)
    real = conflicts.detect

    def fail(*a, **kw):
        real(*a, **kw)
        raise OSError("disk full")

    with writer(path) as con:
        untouched = state(con)
        monkeypatch.setattr(conflicts, "detect", fail)
        with pytest.raises(OSError, match="disk full"):
            reconcile(con, CAT, DAY2, tmp_path / "reports")
        assert state(con) == untouched
        assert not (tmp_path / "reports").exists()  # no report of a run that did not happen
        monkeypatch.setattr(conflicts, "detect", real)
        reconcile(con, CAT, DAY2, tmp_path / "reports")
        assert not differences(state(con), case.reference)
