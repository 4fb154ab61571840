"""The workbench page in headless Chromium (Debian's), against the real service: log in, browse
the schema with its comments, run a query and see masked values and the truncated badge, cancel
a long one, export CSV and open it, save a query and reopen it, run a shared analysis and see
its chart."""

import pytest
from playwright.sync_api import expect

from .test_workbench_service import workbench  # noqa: F401 - the running workbench

pytestmark = pytest.mark.integration

SLOW = ("SELECT count(*) FROM range(10000000000000) a, range(1000) b "
        "WHERE (a.range * b.range) % 7 = 3")


@pytest.fixture
def page(browser, workbench):  # noqa: F811
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{workbench['url']}/workbench")
    page.fill("#credential", workbench["creds"]["li_na"])
    page.click("#login")
    expect(page.locator("#tier")).to_have_text("statistical")
    yield page
    assert errors == []
    context.close()


def write_sql(page, sql: str) -> None:
    page.click(".cm-content")
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(sql)


def test_browse_run_and_see_masked_values_and_the_truncated_badge(page):
    table = page.locator('[data-table="cur.ps_pop_basic"]')
    expect(table).to_be_visible()
    expect(page.locator("#schema")).to_contain_text("人口基本信息")
    table.click()  # expanded: the columns with their comments
    expect(page.locator("#schema")).to_contain_text("mask: pseudonym")
    write_sql(page, "SELECT GMSFHM, XM, CSRQ FROM cur.ps_pop_basic")
    page.click("#run")
    expect(page.locator("#truncated")).to_be_visible()
    expect(page.locator("#row-count")).to_contain_text("1,000")
    first = page.locator("#results tbody tr").first.locator("td:not(.rownum)")
    assert first.nth(0).inner_text().startswith("P") and len(first.nth(0).inner_text()) == 21
    assert first.nth(1).inner_text().endswith("*")
    assert len(first.nth(2).inner_text()) == 7  # YYYY-MM


def test_a_refused_statement_shows_where_the_problem_is(page):
    write_sql(page, "SELECT 1\nFROM read_csv('/etc/passwd')")
    page.click("#run")
    expect(page.locator("#error")).to_be_visible()
    expect(page.locator("#error")).to_contain_text("line 2")


def test_cancel_a_long_query(page):
    write_sql(page, SLOW)
    page.click("#run")
    expect(page.locator("#cancel")).to_be_enabled()
    page.click("#cancel")
    expect(page.locator("#status")).to_contain_text("cancel", ignore_case=True, timeout=30_000)


def test_export_csv_and_open_it(page, tmp_path):
    write_sql(page, "SELECT XM AS surname, count(*) AS n FROM cur.ps_pop_basic GROUP BY 1 "
                    "ORDER BY 2 DESC")
    page.click("#run")
    expect(page.locator("#export-csv")).to_be_enabled()
    with page.expect_download() as download:
        page.click("#export-csv")
    path = tmp_path / "export.csv"
    download.value.save_as(path)
    data = path.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")  # Excel reads the Chinese correctly
    lines = data[3:].decode("utf-8").splitlines()
    assert lines[0] == '"surname","n"' and lines[1].split(",")[0].strip('"').endswith("*")


def test_save_a_query_and_reopen_it(page, workbench):  # noqa: F811
    sql = "SELECT HJDZ_XZQHDM AS division, count(*) AS persons FROM cur.ps_pop_basic GROUP BY 1"
    write_sql(page, sql)
    page.click("#save")
    page.fill("#save-name", "persons per district")
    page.click("#save-confirm")
    saved = page.locator("#saved-list li", has_text="persons per district")
    expect(saved).to_be_visible()
    page.reload()  # the session is kept for the tab; the saved query is kept by the service
    expect(page.locator("#tier")).to_have_text("statistical")
    write_sql(page, "SELECT 1")
    page.locator("#saved-list li", has_text="persons per district").click()
    expect(page.locator(".cm-content")).to_contain_text("HJDZ_XZQHDM")
    expect(page.locator("#row-count")).not_to_be_empty()


def test_a_shared_analysis_runs_with_its_chart(page):
    page.locator('[data-saved-id="backflow-freshness"]').click()
    expect(page.locator("#chart svg")).to_be_visible()
    expect(page.locator("#results")).to_contain_text("PS_POP_BASIC")
