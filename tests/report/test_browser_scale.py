"""index.html at ten thousand flows, in headless Chromium (the setup of test_browser.py).

The document is the real ``explain`` of the generated 48-node scale scenario (9,776 flows, issue 16),
made check-like (every flow observed as predicted, a kernel-trace-like path per node it crosses, one
mismatch) and written the way ``netiso check`` writes a run that large: paths shared by reference.
What is checked is that the page renders and stays usable, not how fast: the scenario is listed one
flow per row (a grid would have 190 x 4,606 cells), the verdict/mismatch/text filters work on it,
the mismatch opens with its inline kernel trace, a matched flow's panel says where its trace is.
No timing assertions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from netiso.report.compact import share_paths
from netiso.report.html import write_html
from tests.report.test_browser import CHROMEDRIVER, CHROMIUM, driver  # noqa: F401 - the module's browser fixture
from tests.support.scale_scenarios import explained_lab_doc

pytestmark = pytest.mark.skipif(not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
                                reason="needs Debian's chromium and chromium-driver (bin/bootstrap installs them)")

VISIBLE_ROWS = ("return Array.from(document.querySelectorAll('section.scenario tr[data-search]'))"
                ".filter(r => r.offsetParent !== null).map(r => r.getAttribute('data-search'))")


def _settled(browser: Any, done: Any) -> list[str]:
    """The visible rows once the (debounced) filter has run: polled until ``done`` holds, 10 s at most."""
    from selenium.webdriver.support.ui import WebDriverWait

    rows: list[str] = []

    def ready(_: Any) -> bool:
        rows[:] = browser.execute_script(VISIBLE_ROWS)
        return bool(done(rows))

    WebDriverWait(browser, 10, poll_frequency=0.2).until(ready)
    return rows


@pytest.fixture(scope="module")
def big_doc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    doc = explained_lab_doc(tmp_path_factory.mktemp("scale48"), 48)
    for f in doc["scenarios"][0]["flows"]:
        p = f["predicted"]
        nodes = dict.fromkeys(h["at"][5:] for h in p["hops"] if (h.get("at") or "").startswith("node:"))
        f["observed"] = {"verdict": p["verdict"], "source": (p["source"] or [None])[0], "tries": 1,
                         "answeredBy": (p.get("answeredBy") or [None])[0], "ms": 2.0, "decidedBy": p.get("decidedBy"),
                         "path": [{"node": n, "table": "filter", "chain": "FORWARD", "handle": 7, "verdict": "ACCEPT",
                                   "rule": "", "comment": "cali-FORWARD", "decision": None} for n in nodes]}
        f["match"] = True
    bad = next(f for f in doc["scenarios"][0]["flows"][5000:] if f["predicted"]["verdict"] == "dropped")
    bad["observed"].update(verdict="allowed", source="client:bob")
    bad["match"], bad["problems"] = False, ["observed allowed, predicted dropped"]
    return share_paths(doc)


def test_ten_thousand_flows_render_as_a_filterable_list_and_open_their_details(
        driver: Any, big_doc: dict[str, Any], tmp_path: Path) -> None:  # noqa: F811 - the imported fixture
    from selenium.webdriver.common.by import By

    flows = big_doc["scenarios"][0]["flows"]
    assert len(flows) > 9000
    path = write_html(tmp_path, big_doc)
    driver.get_log("browser")
    driver.get(path.as_uri())
    assert driver.find_elements(By.CSS_SELECTOR, "section.scenario table.flowlist")
    assert driver.execute_script("return document.querySelectorAll('section.scenario .chip').length") == len(flows)
    assert len(driver.execute_script(VISIBLE_ROWS)) == len(flows)
    assert "1 mismatched" in driver.find_element(By.CSS_SELECTOR, "#summary .cards").text

    driver.find_element(By.ID, "mismatch-only").click()
    shown = _settled(driver, lambda rows: len(rows) < len(flows))
    assert len(shown) == 1 and "client:bob" in shown[0] and "mismatch" in shown[0]
    driver.find_element(By.ID, "mismatch-only").click()
    assert len(_settled(driver, lambda rows: len(rows) > 1)) == len(flows)

    box = driver.find_element(By.ID, "filter")
    box.send_keys("client:alice p7b/web@worker9")  # a large page filters once typing pauses
    shown = _settled(driver, lambda rows: len(rows) < len(flows))
    expected = [f for f in flows if f["from"] == "client:alice" and f["to"] == "nodeport:p7b/web@worker9"]
    assert len(shown) == len(expected) == 1 and "client:alice" in shown[0]
    box.clear()
    box.send_keys(" ")
    assert len(_settled(driver, lambda rows: len(rows) == len(flows))) == len(flows)

    driver.find_element(By.CSS_SELECTOR, "#summary .mismatches a").click()
    panel = driver.find_element(By.ID, "panel")
    assert panel.is_displayed() and "MISMATCH" in panel.text
    assert panel.find_elements(By.CSS_SELECTOR, "table.trace")  # a mismatch keeps its trace inline
    driver.find_element(By.CSS_SELECTOR, "#panel .close").click()

    late = next(i for i, f in enumerate(flows) if i > 100 and f["match"])
    chip = driver.find_element(By.CSS_SELECTOR, f'section.scenario .chip[data-flow="0-{late}"]')
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", chip)
    chip.click()
    assert panel.is_displayed() and "observed.pathRef" in panel.text and "predicted hops" in panel.text
    assert [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"] == []
