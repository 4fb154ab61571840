"""The warehouse keeps loading for as long as a node runs: hundreds of daily batches of a resource
(years of deliveries at the normal rhythm) load, stay ordered and keep their history exact."""

import datetime as dt

import duckdb
import pytest
from dropwriter import write_batch

from pipelines import backflow
from pipelines.catalog.model import catalog
from pipelines.catalog.identifiers import make_citizen_id

pytestmark = pytest.mark.integration

CAT = catalog()
POP = CAT.resource("PS_POP_BASIC")
HEADER = [f.code for f in POP.fields if f.code != "ZP"] + ["CZLX", "GXSJ"]
PERSONS = 3
DAYS = 300  # the 22nd batch overflowed a 32-bit version id; 300 is most of a year of days


def person(i: int, day: int) -> list[str]:
    pid = make_citizen_id("500103", dt.date(1980, 1, 1) + dt.timedelta(days=i), 11 + 2 * i)
    when = dt.datetime(2026, 1, 1, 10) + dt.timedelta(days=day)
    address = f"渝中区解放碑街道{day}号"  # every day a new address: one new version per person
    op = "I" if day == 0 else "U"
    return [pid, "张伟", "1", "01", pid[6:14], "500103", address, "20", "0", "", op,
            f"{when:%Y-%m-%d %H:%M:%S}"]


def test_hundreds_of_daily_batches_load_with_exact_history(hub_settings):
    s = hub_settings.model_copy(update={"contracts": False})  # the version ids are what is tested
    for day in range(DAYS):
        write_batch(s.drops, "PS", "PS_POP_BASIC", f"20260101T020000-{day:06d}", HEADER,
                    [person(i, day) for i in range(PERSONS)])
    run = backflow.ingest_drops(s, CAT, POP)
    assert run.rejected == []
    assert len(run.loaded) == DAYS

    with duckdb.connect(str(s.warehouse_path), read_only=True) as con:
        assert con.execute("SELECT count(*), count(DISTINCT _vid) FROM hist.ps_pop_basic"
                           ).fetchall() == [(DAYS * PERSONS, DAYS * PERSONS)]
        # the latest day's address is current; every earlier version closed by the next one
        current = con.execute("SELECT DISTINCT HJDZ_XXDZ FROM cur.ps_pop_basic").fetchall()
        assert current == [(f"渝中区解放碑街道{DAYS - 1}号",)]
        open_ended = con.execute("""SELECT count(*) FROM hist.ps_pop_basic
            WHERE _valid_to IS NULL""").fetchall()[0][0]
        assert open_ended == PERSONS
        # version ids follow delivery order
        order = con.execute("""SELECT _batch_id FROM hist.ps_pop_basic
            WHERE GMSFHM = (SELECT min(GMSFHM) FROM hist.ps_pop_basic) ORDER BY _vid""").fetchall()
        assert [b for (b,) in order] == sorted(b for (b,) in order)

    # and the next day still loads after all of that
    write_batch(s.drops, "PS", "PS_POP_BASIC", f"20260101T020000-{DAYS:06d}", HEADER,
                [person(i, DAYS) for i in range(PERSONS)])
    assert len(backflow.ingest_drops(s, CAT, POP).loaded) == 1


def test_the_demo_runs_for_weeks_of_simulated_days(tmp_path):
    """Every daily run succeeds for two weeks: the main job, end to end, as `make demo` runs it."""
    import subprocess
    import sys

    days = 14
    out = subprocess.run([sys.executable, "-m", "pipelines.cli", "demo", "--no-serve",
                          "--scale", "1000", "--days", str(days), "--home", str(tmp_path / "demo")],
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    runs = [x for x in out.stdout.splitlines() if x.startswith(("  full load:", "  increment "))]
    assert len(runs) == days + 1 and all(x.endswith("succeeded") for x in runs), runs
    assert "Traceback" not in out.stdout + out.stderr
