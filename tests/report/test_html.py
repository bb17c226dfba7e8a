"""index.html as text: self-contained (nothing to fetch), everything from the document escaped,
the summary first, and written by ``--report`` next to the Markdown reports. (What a browser
makes of it: tests/report/test_browser.py.)"""

from __future__ import annotations

import copy
import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from netiso.cli import main
from netiso.report.html import render_html

ROOT = Path(__file__).resolve().parents[2]


class _Tags(HTMLParser):
    """Every start tag with its attributes, and the text of style elements."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.styles.append(data)


def _parse(text: str) -> _Tags:
    parser = _Tags()
    parser.feed(text)
    parser.close()
    return parser


@pytest.fixture(scope="module")
def explain_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    assert main(["explain", str(ROOT / "scenarios"), "--report", str(out)]) == 0
    return out


def test_report_option_writes_index_html_next_to_the_markdown(explain_dir: Path) -> None:
    assert {p.name for p in explain_dir.iterdir()} >= {"results.json", "matrix.md", "modes.md",
                                                      "loadbalancers.md", "index.html"}
    doc = json.loads((explain_dir / "results.json").read_text(encoding="utf-8"))
    assert (explain_dir / "index.html").read_text(encoding="utf-8") == render_html(doc)


def test_the_page_loads_nothing_from_anywhere(explain_dir: Path) -> None:
    text = (explain_dir / "index.html").read_text(encoding="utf-8")
    page = _parse(text)
    refs = [(tag, name, value) for tag, attrs in page.tags for name, value in attrs.items()
            if name in ("src", "href", "xlink:href", "action", "srcset", "data", "poster")]
    assert all(value is not None and (value.startswith(("#", "data:"))) for _tag, _name, value in refs), refs
    assert not [t for t, a in page.tags if t in ("iframe", "object", "embed", "img", "video", "audio")]
    assert not [a for t, a in page.tags if t == "link" and a.get("rel") != "icon"]
    assert not [a for t, a in page.tags if t == "script" and "src" in a]
    assert "url(" not in "".join(page.styles) and "@import" not in "".join(page.styles)
    csp = [a.get("content") or "" for t, a in page.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert csp and csp[0].startswith("default-src 'none'")
    assert "http://" not in text and "https://" not in text
    assert len([t for t, _ in page.tags if t == "svg"]) > 10  # the diagrams are inline SVG


def _hostile(explain_dir: Path) -> dict[str, Any]:
    doc = json.loads((explain_dir / "results.json").read_text(encoding="utf-8"))
    scenario = copy.deepcopy(doc["scenarios"][0])
    scenario["name"] = 'evil <script>alert("x")</script>'
    scenario["description"] = 'see <img src=x onerror="alert(1)"> & "quotes"'
    scenario["warnings"] = ["<u>underlined</u>"]
    flow = scenario["flows"][0]
    flow["from"] = 'pod:x/"><svg onload=alert(2)>'
    flow["observed"] = {"verdict": "allowed", "source": "<i>me</i>", "evidence": {"body": "</pre><script>x</script>"}}
    flow["match"] = False
    flow["problems"] = ["<script>bad()</script>"]
    return {"backend": "<lab>", "profile": "p", "scenarios": [scenario]}


def test_a_scenario_name_with_a_script_tag_is_shown_as_text_never_as_markup(explain_dir: Path) -> None:
    text = render_html(_hostile(explain_dir))
    page = _parse(text)
    assert [t for t, _ in page.tags].count("script") == 1  # the page's own
    assert not [t for t, _ in page.tags if t in ("img", "i", "u")]
    assert not [a for _, a in page.tags if any(k.startswith("on") for k in a)]
    assert "evil &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in text
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt; &amp; &quot;quotes&quot;" in text
    assert "&lt;/pre&gt;&lt;script&gt;x&lt;/script&gt;" in text


def test_the_summary_comes_first_and_lists_each_mismatch_with_a_link_to_its_details(explain_dir: Path) -> None:
    doc = json.loads((explain_dir / "results.json").read_text(encoding="utf-8"))
    scenario = copy.deepcopy(doc["scenarios"][0])
    for f in scenario["flows"]:
        f["observed"] = {"verdict": f["predicted"]["verdict"]}
        f["match"] = True
    scenario["flows"][1]["match"] = False
    scenario["flows"][1]["problems"] = ["predicted dropped, observed allowed"]
    scenario["flows"][2]["observed"] = {"verdict": "skipped", "reason": "client bob is not mapped"}
    scenario["flows"][2]["match"] = False
    text = render_html({"backend": "lab", "profile": "p", "scenarios": [scenario]})
    assert text.index('id="summary"') < text.index('class="scenario"')
    n = len(scenario["flows"])
    assert f"<b>{n - 2}</b> matched" in text and "<b>1</b> mismatched" in text and "<b>1</b> skipped" in text
    assert 'href="#flow-0-1" data-flow="0-1"' in text
    assert 'href="#flow-0-2"' not in text  # a skipped flow is not a mismatch
    assert text.count('class="chip v-') == n  # one chip per flow (one scenario: no comparison tables)
    assert 'id="t-flow-0-1"' in text and "client bob is not mapped" in text


def test_an_explain_document_reads_as_predictions_with_its_disagreements_listed(explain_dir: Path) -> None:
    doc = json.loads((explain_dir / "results.json").read_text(encoding="utf-8"))
    text = render_html(doc)
    assert "explain (predictions only)" in text and "matched" not in text.split('id="summary"')[1].split("</section>")[0]
    flows = sum(len(s["flows"]) for s in doc["scenarios"])
    assert text.count('<template id="t-flow-') == flows
    doc["scenarios"][0]["flows"][0]["disagreements"] = ["scenario expects dropped, the oracle predicts allowed"]
    assert "Disagreements with the scenario (1)" in render_html(doc)
