"""index.html in a real browser: headless Debian Chromium driven by Selenium through Debian's
chromedriver (no Selenium Manager download: the driver path is given and SE_OFFLINE is set).

Rendered from a real ``explain`` document of the bundled scenarios and from small check-like
documents built here with one mismatch. The verdict filter, the row counter and the cross-mode
"differs" flag are checked against what is worked out from the document alone (which rows have a
flow of that verdict; which comparison rows' modes differ in verdict or source seen), and "shown"
means what the browser laid out (a row with a layout box), whatever hid the others. Each of these
checks was seen failing against a deliberately broken page (the JS condition, the counter, the row
flags, the differs rule, the CSS). Any console error fails a test (the page's
Content-Security-Policy turns any attempted fetch into one). Screenshots at a laptop width
(1366x900) and a phone width (390x844) go to /tmp/h4-shots/ for a person to look at; they are
not compared. Skipped, with the reason, only where chromium or chromedriver is not installed
(bin/bootstrap installs both).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from netiso.cli import main
from netiso.report.html import write_html

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
SHOTS = Path("/tmp/h4-shots")

pytestmark = pytest.mark.skipif(not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)),
                                reason="needs Debian's chromium and chromium-driver (bin/bootstrap installs them)")


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    os.environ["SE_OFFLINE"] = "1"  # never let Selenium Manager look for a driver online
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1366,900"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    drv.set_window_size(1366, 900)
    try:
        yield drv
    finally:
        drv.quit()


@pytest.fixture(scope="module")
def explain_doc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("explain") / "results.json"
    assert main(["explain", str(ROOT / "scenarios"), "--json", str(out)]) == 0
    return json.loads(out.read_text(encoding="utf-8"))


def _check_like(explain: dict[str, Any]) -> dict[str, Any]:
    """One bundled scenario as if checked: every flow observed as predicted, except one
    (client:bob's NodePort flow observed allowed though predicted dropped), and a scenario
    name carrying a script tag."""
    scenario = copy.deepcopy(next(s for s in explain["scenarios"] if s["name"] == "nodeport-cluster-vxlan"))
    scenario["name"] = "nodeport <script>window.__pwned=1</script>"
    for f in scenario["flows"]:
        p = f["predicted"]
        f["observed"] = {"verdict": p["verdict"], "source": (p["source"] or [None])[0],
                         "answeredBy": (p.get("answeredBy") or [None])[0], "ms": 3.0,
                         "evidence": {"status": 200, "clientip": "<b>x</b>"}}
        f["match"] = True
    bad = next(f for f in scenario["flows"] if f["from"] == "client:bob" and f["predicted"]["verdict"] == "dropped")
    bad["observed"].update(verdict="allowed", source="client:bob")
    bad["match"] = False
    bad["problems"] = ["predicted dropped, observed allowed"]
    return {"backend": "lab", "profile": "kube-proxy-iptables/calico-iptables", "scenarios": [scenario]}


def _open(driver: Any, directory: Path, doc: dict[str, Any]) -> None:
    path = write_html(directory, doc)
    driver.get_log("browser")  # drop what earlier pages logged
    driver.get(path.as_uri())


def _errors(driver: Any) -> list[dict[str, Any]]:
    return [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def _shoot(driver: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SHOTS / f"{name}.png"))


def test_explain_report_shows_a_grid_per_scenario_and_a_chip_per_flow_without_console_errors(
        driver: Any, explain_doc: dict[str, Any], tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    _open(driver, tmp_path, explain_doc)
    grids = driver.find_elements(By.CSS_SELECTOR, "section.scenario table.grid")
    assert len(grids) == len(explain_doc["scenarios"])
    flows = sum(len(s["flows"]) for s in explain_doc["scenarios"])
    chips = driver.find_elements(By.CSS_SELECTOR, "section.scenario .chip")
    assert len(chips) == flows
    assert all(c.get_attribute("data-diagram") for c in chips)  # every flow has a diagram
    # diagrams are real SVG elements the browser parsed (inside templates until opened)
    svgs = driver.execute_script(
        "return Array.from(document.querySelectorAll('template[id^=t-diagram-]'))"
        ".filter(t => t.content.querySelector('svg rect')).length")
    assert svgs == len(set(c.get_attribute("data-diagram") for c in chips)) > 1
    assert driver.find_element(By.ID, "compare-encapsulation").find_elements(By.CSS_SELECTOR, "tr[data-search]")
    _shoot(driver, "explain-1366")
    assert _errors(driver) == []


def test_typing_in_the_filter_hides_the_rows_that_do_not_match(driver: Any, explain_doc: dict[str, Any],
                                                               tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    _open(driver, tmp_path, explain_doc)
    rows = driver.find_elements(By.CSS_SELECTOR, "tr[data-search]")
    box = driver.find_element(By.ID, "filter")
    box.send_keys("udp-nodeport client:bob")
    visible = [r for r in rows if r.is_displayed()]
    assert visible and len(visible) < len(rows)
    for r in visible:
        text = r.get_attribute("data-search")
        assert "udp-nodeport" in text and "client:bob" in text
    shown_scenarios = [s for s in driver.find_elements(By.CSS_SELECTOR, "section.scenario") if s.is_displayed()]
    assert [s.find_element(By.TAG_NAME, "h2").text.split(" ")[0] for s in shown_scenarios] == ["udp-nodeport-vxlan"]
    box.clear()
    box.send_keys(" ")  # an input event with an empty query shows everything again
    assert all(r.is_displayed() for r in driver.find_elements(By.CSS_SELECTOR, "section.scenario tr[data-search]"))
    assert _errors(driver) == []


def test_clicking_a_cross_node_nodeport_cell_opens_its_diagram_with_the_tunnel(
        driver: Any, explain_doc: dict[str, Any], tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    _open(driver, tmp_path, explain_doc)
    si = next(i for i, s in enumerate(explain_doc["scenarios"]) if s["name"] == "nodeport-cluster-vxlan")
    fi = next(i for i, f in enumerate(explain_doc["scenarios"][si]["flows"])
              if f["from"] == "client:alice" and f["to"] == "nodeport:shop/web@worker2")
    assert not driver.find_element(By.ID, "panel").is_displayed()
    chip = driver.find_element(By.CSS_SELECTOR, f'section.scenario .chip[data-flow="{si}-{fi}"]')
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", chip)
    chip.click()
    panel = driver.find_element(By.ID, "panel")
    assert panel.is_displayed()
    assert "client:alice → nodeport:shop/web@worker2" in panel.text
    svg = panel.find_element(By.CSS_SELECTOR, ".diagram-slot svg")
    labels = [t.text for t in svg.find_elements(By.TAG_NAME, "text")]
    joined = " ".join(labels)
    assert "VXLAN (vxlan.calico)" in joined and "node:worker2" in joined and "tunnel:worker2" in joined
    assert svg.size["width"] > 100 and svg.size["height"] > 100
    _shoot(driver, "explain-panel-1366")
    driver.set_window_size(390, 844)
    try:
        _shoot(driver, "explain-panel-390")
        driver.find_element(By.CSS_SELECTOR, "#panel .close").click()
        assert not panel.is_displayed()
        driver.execute_script("window.scrollTo(0, 0)")
        _shoot(driver, "explain-390")
    finally:
        driver.set_window_size(1366, 900)
    assert _errors(driver) == []


def test_check_report_lists_the_mismatch_first_marks_it_in_words_and_escapes_the_scenario_name(
        driver: Any, explain_doc: dict[str, Any], tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    doc = _check_like(explain_doc)
    _open(driver, tmp_path, doc)
    assert driver.execute_script("return window.__pwned === undefined")
    heading = driver.find_element(By.CSS_SELECTOR, "section.scenario h2").text
    assert "<script>window.__pwned=1</script>" in heading  # shown as text, not run
    cards = driver.find_element(By.CSS_SELECTOR, "#summary .cards").text
    assert "1 mismatched" in cards and f"{len(doc['scenarios'][0]['flows']) - 1} matched" in cards
    marked = driver.find_elements(By.CSS_SELECTOR, "section.scenario .chip.mm")
    assert len(marked) == 1 and "mismatch: predicted dropped" in marked[0].text
    _shoot(driver, "check-1366")
    driver.find_element(By.ID, "mismatch-only").click()
    visible = [r for r in driver.find_elements(By.CSS_SELECTOR, "section.scenario tr[data-search]") if r.is_displayed()]
    assert len(visible) == 1 and "client:bob" in visible[0].text
    driver.find_element(By.CSS_SELECTOR, "#summary .mismatches a").click()
    panel = driver.find_element(By.ID, "panel")
    assert panel.is_displayed() and "MISMATCH" in panel.text and "predicted dropped, observed allowed" in panel.text
    assert panel.find_element(By.CSS_SELECTOR, ".diagram-slot svg .end-dropped")  # the dropped hop, marked
    evidence = panel.find_element(By.XPATH, ".//details[summary[text()='evidence']]")
    assert evidence.get_attribute("open") is None  # collapsed until asked for
    _shoot(driver, "check-panel-1366")
    driver.set_window_size(390, 844)
    try:
        _shoot(driver, "check-panel-390")
    finally:
        driver.set_window_size(1366, 900)
    assert _errors(driver) == []


@pytest.mark.lab
def test_a_real_lab_check_report_opens_a_cell_with_its_diagram_and_kernel_trace(driver: Any, tmp_path: Path) -> None:
    """What ``bin/conformance`` and ``netiso check --report`` write, from a real lab run (root):
    the page renders without console errors and a dropped flow's cell opens its diagram, the
    deciding rule on both sides and the kernel's rule trace."""
    from selenium.webdriver.common.by import By

    report = tmp_path / "report"
    assert main(["check", str(ROOT / "scenarios" / "nodeport.yaml"), "--report", str(report)]) == 0
    doc = json.loads((report / "results.json").read_text(encoding="utf-8"))
    driver.get_log("browser")
    driver.get((report / "index.html").as_uri())
    si = next(i for i, s in enumerate(doc["scenarios"]) if s["name"] == "nodeport-cluster-vxlan")
    fi = next(i for i, f in enumerate(doc["scenarios"][si]["flows"])
              if f["from"] == "client:bob" and f["to"] == "nodeport:shop/web@worker")
    assert doc["scenarios"][si]["flows"][fi]["observed"]["path"], "the lab traced the probe"
    chip = driver.find_element(By.CSS_SELECTOR, f'section.scenario .chip[data-flow="{si}-{fi}"]')
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", chip)
    chip.click()
    panel = driver.find_element(By.ID, "panel")
    assert panel.is_displayed()
    assert panel.find_element(By.CSS_SELECTOR, ".diagram-slot svg")
    text = panel.text
    assert "isolation shop ingress drop" in text and "kernel trace" in text
    _shoot(driver, "lab-check-panel-1366")
    assert _errors(driver) == []


# ----------------------------------------------------------------------------- filter, counter, cross-mode flag

# Every filterable row as the browser lays it out: where it is, its cells' text, whether a person sees it
# (a row with no layout box is hidden, whatever hid it) and whether its "differs" cell is seen.
_ROWS_JS = """
return Array.from(document.querySelectorAll('tr[data-search]')).map(function(r){
  var wrap = r.closest('.grid-wrap'), h3 = wrap && wrap.previousElementSibling;
  var last = r.cells[r.cells.length - 1];
  return {section: r.closest('section').id, family: h3 && h3.tagName === 'H3' ? h3.textContent : '',
          cells: Array.from(r.cells).map(function(c){ return c.textContent; }),
          visible: r.getClientRects().length > 0,
          differsSeen: last.classList.contains('differs') && last.getClientRects().length > 0
                       && getComputedStyle(last).visibility === 'visible' ? last.textContent : ''};
});
"""


def _verdict(flow: dict[str, Any]) -> str:
    return str((flow.get("observed") or flow["predicted"])["verdict"])


def _row_key(row: dict[str, Any]) -> tuple[str, ...]:
    """(section, source) for a grid row; (section, family, from, to, port) for a comparison row."""
    if row["section"].startswith("scenario-"):
        return (row["section"], row["cells"][0])
    return (row["section"], row["family"], *row["cells"][:3])


def _rows_by_verdict(doc: dict[str, Any]) -> tuple[dict[tuple[str, ...], set[str]], int]:
    """Every row the page should have, with the verdicts of its flows, worked out from the document alone."""
    from netiso.report.compare import DIMENSIONS, families, family_rows

    rows: dict[tuple[str, ...], set[str]] = {}
    for si, s in enumerate(doc["scenarios"]):
        for f in s["flows"]:
            rows.setdefault((f"scenario-{si}", f["from"]), set()).add(_verdict(f))
    for dimension in DIMENSIONS:
        for fam, by_value in families(doc, dimension).items():
            for (src, dst, port), flows in family_rows(by_value).items():
                rows[(f"compare-{dimension}", fam, src, dst, port)] = {_verdict(f) for f in flows.values()}
    return rows, len(rows)


def _differs(doc: dict[str, Any], dimension: str = "encapsulation") -> dict[tuple[str, ...], bool]:
    """Comparison row -> whether its modes differ: in verdict, or for an allowed flow in the source seen."""
    from netiso.report.compare import families, family_rows

    out = {}
    for fam, by_value in families(doc, dimension).items():
        for (src, dst, port), flows in family_rows(by_value).items():
            outcomes = set()
            for f in flows.values():
                seen = f["observed"].get("source") if f.get("observed") else " or ".join(f["predicted"].get("source") or [])
                outcomes.add((_verdict(f), seen if _verdict(f) == "allowed" else None))
            out[(f"compare-{dimension}", fam, src, dst, port)] = len(outcomes) > 1
    return out


def test_choosing_a_verdict_shows_exactly_the_rows_with_a_flow_of_that_verdict_and_the_counter_says_how_many(
        driver: Any, explain_doc: dict[str, Any], tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    expected, total = _rows_by_verdict(explain_doc)
    _open(driver, tmp_path, explain_doc)
    counter = driver.find_element(By.ID, "count")
    assert counter.text == f"{total} of {total} rows"
    assert len(driver.execute_script(_ROWS_JS)) == total
    choice = Select(driver.find_element(By.ID, "verdict"))
    verdicts = [o.get_attribute("value") for o in choice.options if o.get_attribute("value")]
    assert verdicts == sorted({_verdict(f) for s in explain_doc["scenarios"] for f in s["flows"]}) == [
        "allowed", "dropped", "refused"]
    for verdict in verdicts:
        choice.select_by_value(verdict)
        rows = driver.execute_script(_ROWS_JS)
        shown = {_row_key(r) for r in rows if r["visible"]}
        wanted = {key for key, found in expected.items() if verdict in found}
        assert shown == wanted, verdict
        assert 0 < len(shown) < total
        assert counter.text == f"{len(wanted)} of {total} rows"
        # a grid whose rows are all hidden is hidden with its heading; one with a shown row is not
        sections = driver.execute_script("return Array.from(document.querySelectorAll('section.scenario'))"
                                          ".map(function(s){ return [s.id, s.getClientRects().length > 0]; })")
        assert {sid for sid, seen in sections if seen} == {k[0] for k in wanted if k[0].startswith("scenario-")}
    choice.select_by_value("")
    assert all(r["visible"] for r in driver.execute_script(_ROWS_JS))
    assert counter.text == f"{total} of {total} rows"
    assert _errors(driver) == []


def test_a_row_whose_encapsulation_modes_differ_carries_a_visible_differs_flag_and_no_other_row_does(
        driver: Any, explain_doc: dict[str, Any], tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    expected = _differs(explain_doc)
    _open(driver, tmp_path, explain_doc)
    rows = [r for r in driver.execute_script(_ROWS_JS) if r["section"] == "compare-encapsulation"]
    flagged = {_row_key(r): r["differsSeen"] == "≠ differs" for r in rows}
    assert flagged == expected
    assert 0 < sum(expected.values()) < len(expected)
    # by name: NodePort entering worker2 with the endpoint on worker is SNATed to the tunnel address under
    # IPIP/VXLAN and to the node address in direct mode; client:bob is dropped by isolation in every mode
    differs = ("compare-encapsulation", "nodeport-cluster", "client:alice", "nodeport:shop/web@worker2", "8080/TCP")
    same = ("compare-encapsulation", "nodeport-cluster", "client:bob", "nodeport:shop/web@worker", "8080/TCP")
    assert flagged[differs] and not flagged[same]
    elements = driver.find_elements(By.CSS_SELECTOR, "tr[data-search]")
    by_key = {_row_key(r): elements[i] for i, r in enumerate(driver.execute_script(_ROWS_JS))}
    row = by_key[differs]
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", row)
    cell = row.find_element(By.CSS_SELECTOR, "td.differs")
    assert cell.is_displayed() and cell.text == "≠ differs"
    assert [c.text for c in row.find_elements(By.CSS_SELECTOR, "td .chip .seen")] == [
        "node:worker2", "tunnel:worker2", "tunnel:worker2"]  # direct, ipip, vxlan
    assert by_key[same].find_element(By.CSS_SELECTOR, "td.differs").text == ""
    _shoot(driver, "explain-differs-1366")
    # the flag is a filter word too: "differs" keeps exactly the flagged rows of both comparisons
    driver.find_element(By.ID, "filter").send_keys("differs")
    shown = {_row_key(r) for r in driver.execute_script(_ROWS_JS) if r["visible"]}
    assert shown == {k for k, d in {**expected, **_differs(explain_doc, "loadBalancer")}.items() if d}
    assert driver.find_element(By.ID, "count").text.startswith(f"{len(shown)} of ")
    assert _errors(driver) == []


def test_in_a_check_report_the_observed_outcomes_decide_the_differs_flag(
        driver: Any, explain_doc: dict[str, Any], tmp_path: Path) -> None:
    """The nodeport-cluster family as if checked: every flow observed with one source, and client:bob's
    NodePort flow on worker observed allowed under IPIP only. That row is flagged (and is the one
    mismatch); client:alice's local-endpoint row, whose *predictions* differ across modes (node or
    tunnel address), is not, since the same source was observed everywhere."""
    from selenium.webdriver.common.by import By

    scenarios = [copy.deepcopy(s) for s in explain_doc["scenarios"] if s["name"].startswith("nodeport-cluster-")]
    assert len(scenarios) == 3
    for s in scenarios:
        for f in s["flows"]:
            p = f["predicted"]
            f["observed"] = {"verdict": p["verdict"], "source": (p["source"] or [None])[0]}
            f["match"] = True
            if s["encapsulation"] == "ipip" and (f["from"], f["to"]) == ("client:bob", "nodeport:shop/web@worker"):
                f["observed"].update(verdict="allowed", source="client:bob")
                f["match"] = False
    doc = {"backend": "lab", "profile": "kube-proxy-iptables/calico-iptables", "scenarios": scenarios}
    expected = _differs(doc)
    bob = ("compare-encapsulation", "nodeport-cluster", "client:bob", "nodeport:shop/web@worker", "8080/TCP")
    alice = ("compare-encapsulation", "nodeport-cluster", "client:alice", "nodeport:shop/web@worker", "8080/TCP")
    assert expected[bob] and not expected[alice] and _differs(explain_doc)[alice]
    _open(driver, tmp_path, doc)
    rows = [r for r in driver.execute_script(_ROWS_JS) if r["section"] == "compare-encapsulation"]
    assert {_row_key(r): r["differsSeen"] == "≠ differs" for r in rows} == expected
    driver.find_element(By.ID, "mismatch-only").click()
    shown = [r for r in driver.execute_script(_ROWS_JS) if r["visible"]]
    ipip = next(i for i, s in enumerate(scenarios) if s["encapsulation"] == "ipip")
    assert sorted(_row_key(r) for r in shown) == sorted([(f"scenario-{ipip}", "client:bob"), bob])
    assert driver.find_element(By.ID, "count").text == f"2 of {len(driver.execute_script(_ROWS_JS))} rows"
    assert _errors(driver) == []
