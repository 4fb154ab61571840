"""The officer's preview page in headless Chromium (Debian's), against the real service: pick a
life event, enter the subjects, see the prefilled form with source, freshness and withheld
badges; an unknown subject shows the service's own explanation."""

import pytest

from .test_prefill_api import LI, STRANGER, WANG, service  # noqa: F401 - the running service

pytestmark = pytest.mark.integration


def open_form(browser, url, credential, template="NEWBORN"):
    page = browser.new_page()
    page.goto(f"{url}/preview")
    page.fill("#credential", credential)
    page.select_option("#template", template)
    return page


def test_the_page_shows_the_prefilled_form_with_its_badges(browser, service):  # noqa: F811
    url, keys, _ = service
    page = open_form(browser, url, keys["YBJ"])  # may not see marriage records
    page.fill("#subject-mother", LI)
    page.fill("#subject-father", WANG)
    page.click("#go")
    name = page.locator('tr[data-field="mother.name"]')
    name.wait_for()
    assert name.locator("td.value").inner_text() == "李秀英"
    assert "PS · PS_POP_BASIC" in name.inner_text() and "as of" in name.inner_text()
    marital = page.locator('tr[data-field="mother.marital_status"]')
    assert marital.get_attribute("data-status") == "withheld"
    assert marital.locator("td.value").inner_text() == "—"
    assert "CONSUMER_NOT_ENTITLED" in marital.inner_text()
    page.close()


def test_an_unknown_subject_shows_what_the_service_said(browser, service):  # noqa: F811
    url, keys, _ = service
    page = open_form(browser, url, keys["WJW"])
    page.fill("#subject-mother", STRANGER)
    page.click("#go")
    page.wait_for_selector("#message.error")
    assert "404 unknown_subject" in page.inner_text("#message")
    assert "subjects.mother" in page.inner_text("#message")
    page.close()
