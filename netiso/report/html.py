"""``index.html``: the whole result document as one page a person opens in a browser.

The Markdown reports are for reading top to bottom; this page is for finding the one wrong cell
among hundreds and seeing why. Summary first (mismatches listed with links), then a truth-table
grid per scenario (rows = sources, columns = targets; each cell says the verdict in words and
colour and the source the server saw, a mismatch is marked with a sign and a thick outline, not
only by colour), a text filter, the cross-mode and cross-load-balancer tables of modes.md /
loadbalancers.md (same grouping code: :mod:`netiso.report.compare`), and a details panel per
flow: its path diagram (inline SVG from :mod:`netiso.report.diagram`), predicted against observed,
problems, hops and evidence.

One self-contained file: inline CSS, a few lines of inline script, SVG drawn in Python; no
fetch, no CDN, no web font. A Content-Security-Policy meta tag forbids every load, so a stray
reference shows up as a console error in the browser test instead of a silent request. All text
from the document (scenario names, descriptions, policy names: user input) is HTML-escaped.
Works for ``explain`` documents (no ``observed``) and ``check`` documents alike.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

from netiso.report import controller_diff
from netiso.report.compact import predicted_path
from netiso.report.compare import DIMENSIONS, TITLES, families, family_rows
from netiso.report.diagram import DiagramIndex, svg

MAX_GRID_CELLS = 20_000  # past this a scenario is listed one flow per row (see _list)
ICON = {"allowed": "✓", "dropped": "✗", "refused": "⊘", "mixed": "◐", "skipped": "–", "error": "!"}


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def _breakable(symbol: str) -> str:
    """Escaped, with break opportunities after : / @ so narrow columns break between parts."""
    out = _e(symbol)
    for sep in (":", "/", "@"):
        out = out.replace(sep, sep + "<wbr>")
    return out


def _join(value: Any) -> str:
    if value is None or value == []:
        return "–"
    return " or ".join(str(v) for v in value) if isinstance(value, list) else str(value)


class _Flow:
    """One flow with what the page shows of it."""

    def __init__(self, si: int, fi: int, scenario: dict[str, Any], flow: dict[str, Any], diagram: str | None) -> None:
        self.id = f"{si}-{fi}"
        self.diagram = diagram  # id of its path diagram (P3), None without structured hops
        self.scenario, self.flow = scenario, flow
        pred = flow.get("predicted") or {}
        obs = flow.get("observed")
        self.observed = obs is not None
        self.skipped = bool(obs and obs.get("verdict") == "skipped")
        self.verdict = str((obs or pred).get("verdict"))
        self.source = _join(obs.get("source") if obs else pred.get("source"))
        if self.observed:
            self.mismatch = not self.skipped and flow.get("match") is False
        else:
            self.mismatch = bool(flow.get("disagreements"))
        self.label = f"{flow['from']} → {flow['to']} ({flow.get('port', '')})"
        self.problems = list(flow.get("problems") or []) + list(flow.get("disagreements") or [])

    def search(self) -> str:
        words = [self.scenario["name"], self.flow["from"], self.flow["to"], self.flow.get("port", ""),
                 self.verdict, self.source, "mismatch" if self.mismatch else "", "skipped" if self.skipped else ""]
        return " ".join(words).lower()

    def chip(self) -> str:
        v = self.verdict if self.verdict in ICON else "error"
        seen = f' <span class="seen">{_breakable(self.source)}</span>' if self.verdict == "allowed" else ""
        mark = ""
        if self.mismatch:
            pred = self.flow.get("predicted") or {}
            mark = f'<span class="mm-badge">⚠ mismatch: predicted {_e(pred.get("verdict"))}</span>'
        title = f"{self.label}: {self.verdict}" + (f", source {self.source}" if self.verdict == "allowed" else "")
        return (f'<button type="button" class="chip v-{v}{" mm" if self.mismatch else ""}" data-flow="{self.id}" '
                f'data-diagram="{_e(self.diagram or "")}" title="{_e(title)}">'
                f'<span class="port">{_e(self.flow.get("port", ""))}</span> '
                f'<span class="verdict">{ICON[v]} {_e(self.verdict)}</span>{seen}{mark}</button>')


def _summary(doc: dict[str, Any], flows: list[_Flow]) -> str:
    observed = any(f.observed for f in flows)
    bad = [f for f in flows if f.mismatch]
    skipped = sum(1 for f in flows if f.skipped)
    cards = [("scenarios", len(doc.get("scenarios", []))), ("flows", len(flows))]
    if observed:
        cards += [("matched", sum(1 for f in flows if f.observed and not f.mismatch and not f.skipped)),
                  ("mismatched", len(bad)), ("skipped", skipped)]
        if controller_diff.count(doc):
            cards.append(("controller differences", controller_diff.count(doc)))
    else:
        cards += [("predicted (explain, nothing observed)", len(flows)), ("disagree with expect", len(bad))]
    out = ['<section id="summary"><div class="cards">']
    for name, n in cards:
        cls = " bad" if name in ("mismatched", "disagree with expect", "controller differences") and n else ""
        out.append(f'<div class="card{cls}"><b>{n}</b> {_e(name)}</div>')
    out.append("</div>")
    if bad:
        out.append(f'<h2>{"Mismatches" if observed else "Disagreements with the scenario"} ({len(bad)})</h2>'
                   '<ol class="mismatches">')
        for f in bad:
            out.append(f'<li><a href="#flow-{f.id}" data-flow="{f.id}">{_e(f.scenario["name"])}: {_e(f.label)}</a>'
                       f' — {_e("; ".join(f.problems) or "does not match")}</li>')
        out.append("</ol>")
    elif observed:
        out.append('<p class="ok">Every observed flow matched its prediction.</p>')
    out.append("</section>")
    return "".join(out)


def _grid(si: int, scenario: dict[str, Any], flows: list[_Flow]) -> str:
    sources = list(dict.fromkeys(f.flow["from"] for f in flows))
    targets = list(dict.fromkeys(f.flow["to"] for f in flows))
    if len(sources) * len(targets) > MAX_GRID_CELLS:
        return _list(si, scenario, flows)
    cells: dict[tuple[str, str], list[_Flow]] = {}
    for f in flows:
        cells.setdefault((f.flow["from"], f.flow["to"]), []).append(f)
    out = _heading(si, scenario)
    out.append('<div class="grid-wrap"><table class="grid"><thead><tr><th scope="col">from \\ to</th>')
    out += [f'<th scope="col">{_breakable(t)}</th>' for t in targets]
    out.append("</tr></thead><tbody>")
    for src in sources:
        row = [f for t in targets for f in cells.get((src, t), [])]
        search = " ".join(f.search() for f in row)
        flags = " ".join(sorted({f.verdict for f in row} | ({"mismatch"} if any(f.mismatch for f in row) else set())))
        out.append(f'<tr data-search="{_e(search)}" data-flags="{_e(flags)}"><th scope="row">{_e(src)}</th>')
        for t in targets:
            here = cells.get((src, t), [])
            chips = "".join(f.chip() for f in here)
            out.append(f'<td>{chips}</td>' if here else '<td class="none">·</td>')
        out.append("</tr>")
    out.append("</tbody></table></div></section>")
    return "".join(out)


def _heading(si: int, scenario: dict[str, Any]) -> list[str]:
    head = f"{scenario['name']} ({scenario.get('encapsulation', '?')}, {scenario.get('loadBalancer', '?')})"
    out = [f'<section class="scenario" id="scenario-{si}"><h2>{_e(head)}</h2>']
    if scenario.get("description"):
        out.append(f'<p class="desc">{_e(" ".join(str(scenario["description"]).split()))}</p>')
    out += [f'<p class="warn">warning: {_e(w)}</p>' for w in scenario.get("warnings") or []]
    out.append(controller_diff.html_section(scenario))  # --kubesphere controller: both specs side by side
    return out


def _list(si: int, scenario: dict[str, Any], flows: list[_Flow]) -> str:
    """A scenario too large for a grid (rows x columns past MAX_GRID_CELLS: 190 sources x 4,600
    targets at 48 nodes would be 870,000 mostly empty cells): one row per flow, the same chips,
    the same filter attributes."""
    out = _heading(si, scenario)
    out.append(f'<p class="desc">{len(flows)} flows: too many sources and targets for a grid, one row per flow.</p>'
               '<div class="grid-wrap"><table class="grid flowlist"><thead><tr><th scope="col">from</th>'
               '<th scope="col">to</th><th scope="col">result</th></tr></thead><tbody>')
    for f in flows:
        flags = f.verdict + (" mismatch" if f.mismatch else "")
        out.append(f'<tr data-search="{_e(f.search())}" data-flags="{_e(flags)}"><th scope="row">{_e(f.flow["from"])}</th>'
                   f'<td>{_breakable(f.flow["to"])}</td><td>{f.chip()}</td></tr>')
    out.append("</tbody></table></div></section>")
    return "".join(out)


def _detail(f: _Flow, doc: dict[str, Any]) -> str:
    flow, pred, obs = f.flow, f.flow.get("predicted") or {}, f.flow.get("observed")
    exp = flow.get("expected") or {}
    out = [f'<template id="t-flow-{f.id}"><h3>{_e(f.scenario["name"])}</h3><p class="flowlabel">{_e(f.label)}'
           + (f' <span class="intent">intent: {_e(flow["intent"])}</span>' if flow.get("intent") else "") + "</p>"]
    if f.mismatch:
        out.append('<p class="mm-line">⚠ MISMATCH</p>')
    elif obs is not None and not f.skipped:
        out.append('<p class="ok-line">✓ matches the prediction</p>')
    cols = [("expected", exp)] if exp else []
    cols += [("predicted", pred)] + ([("observed", obs)] if obs is not None else [])
    out.append('<table class="pvo"><tr><th></th>' + "".join(f"<th>{_e(c)}</th>" for c, _ in cols) + "</tr>")
    for key, name in (("verdict", "verdict"), ("source", "source seen"), ("sourceIP", "source IP"),
                      ("answeredBy", "answered by"), ("forwardedFor", "X-Forwarded-For"),
                      ("decidedBy", "decided by"), ("reason", "reason"), ("detail", "detail"), ("ms", "ms")):
        if not any(c.get(key) not in (None, [], "") for _, c in cols):
            continue
        vals = []
        for _, c in cols:
            v = c.get(key)
            vals.append(json.dumps(v, ensure_ascii=False) if isinstance(v, dict) else _join(v))
        out.append(f"<tr><th>{_e(name)}</th>" + "".join(f"<td>{_e(v)}</td>" for v in vals) + "</tr>")
    out.append("</table>")
    if f.problems:
        out.append('<ul class="problems">' + "".join(f"<li>{_e(p)}</li>" for p in f.problems) + "</ul>")
    if f.diagram:
        out.append(f'<h4>Predicted path, diagram {_e(f.diagram)}</h4>'
                   f'<div class="diagram-slot" data-diagram="{_e(f.diagram)}"></div>')
    else:
        out.append("<p>No structured hops in this document: no diagram.</p>")
    path = predicted_path(doc, pred)
    out.append(f'<details open><summary>predicted hops ({len(path)})</summary><ol class="hops">'
               + "".join(f"<li>{_e(h)}</li>" for h in path) + "</ol></details>")
    if obs is not None and obs.get("path"):
        out.append(f'<details><summary>observed path (kernel trace, {len(obs["path"])} rules)</summary>'
                   + _trace(obs["path"]) + "</details>")
    elif obs is not None and obs.get("pathRef"):  # a shared document: the page carries mismatches' and a sample's traces
        out.append(f'<p class="desc">observed path: kernel trace of {len(obs["pathRef"])} rules, in results.json '
                   "(<code>observed.pathRef</code> into <code>paths</code>).</p>")
    if obs is not None and obs.get("evidence"):
        out.append('<details><summary>evidence</summary><pre>'
                   + _e(json.dumps(obs["evidence"], indent=1, ensure_ascii=False)) + "</pre></details>")
    out.append("</template>")
    return "".join(out)


def _trace(path: Any) -> str:
    """``observed.path``: the rules the kernel reported (TraceHop dicts: node, table, chain,
    verdict, comment), one row each; anything else as JSON."""
    if not isinstance(path, list) or not all(isinstance(h, dict) for h in path):
        return "<pre>" + _e(json.dumps(path, indent=1, ensure_ascii=False)) + "</pre>"
    rows = ["<table class=\"trace\"><tr><th>node</th><th>table:chain</th><th>verdict</th><th>rule</th></tr>"]
    for h in path:
        rule = h.get("comment") or h.get("rule") or ("policy" if h.get("handle") is None else "")
        rows.append(f"<tr><td>{_e(h.get('node', ''))}</td><td>{_e(h.get('table', ''))}:{_e(h.get('chain', ''))}</td>"
                    f"<td>{_e(h.get('verdict', ''))}</td><td>{_e(rule)}"
                    + (f"<br>{_e(h['decision'])}" if h.get("decision") else "") + "</td></tr>")
    return "".join(rows) + "</table>"


def _comparisons(doc: dict[str, Any], ids: dict[int, _Flow]) -> str:
    out = []
    for dimension, values in DIMENSIONS.items():
        fams = families(doc, dimension)
        out.append(f'<section class="compare" id="compare-{_e(dimension)}"><h2>Across {_e(TITLES[dimension])}</h2>')
        if not fams:
            out.append(f"<p>No scenario family runs with more than one of {_e(', '.join(values))}.</p>")
        for fam, by_mode in fams.items():
            out.append(f'<h3>{_e(fam)}</h3><div class="grid-wrap"><table class="grid compare-table"><thead><tr>'
                       '<th>from</th><th>to</th><th>port</th>'
                       + "".join(f"<th>{_e(v)}</th>" for v in values) + "<th>differs</th></tr></thead><tbody>")
            for (src, dst, port), by_value in family_rows(by_mode).items():
                shown = [ids[id(fl)] for fl in by_value.values()]
                outcomes = {(f.verdict, f.source if f.verdict == "allowed" else "") for f in shown}
                differs = len(outcomes) > 1
                search = " ".join([fam, *(f.search() for f in shown)]) + (" differs" if differs else "")
                flags = " ".join(sorted({f.verdict for f in shown} | ({"mismatch"} if any(f.mismatch for f in shown)
                                                                      else set())))
                out.append(f'<tr data-search="{_e(search)}" data-flags="{_e(flags)}"><td>{_e(src)}</td>'
                           f"<td>{_e(dst)}</td><td>{_e(port)}</td>")
                for v in values:
                    fl = by_value.get(v)
                    if fl is None:
                        out.append('<td class="none">–</td>')
                        continue
                    f = ids[id(fl)]
                    out.append(f"<td>{f.chip()}</td>")
                out.append(f'<td class="differs">{"≠ differs" if differs else ""}</td></tr>')
            out.append("</tbody></table></div>")
        out.append("</section>")
    return "".join(out)


CSS = """
:root{--ok:#2e7d32;--drop:#c62828;--ref:#c77700;--mix:#6a1b9a;--skip:#757575;--line:#d0d0d0}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d1d1d;background:#fff}
header,main,#summary,.controls{padding:0 16px}
header h1{font-size:1.4em;margin:12px 0 2px}
header p{margin:0 0 8px;color:#555}
.cards{display:flex;flex-wrap:wrap;gap:8px;margin:8px 0}
.card{border:1px solid var(--line);border-radius:6px;padding:6px 12px;background:#fafafa}
.card b{font-size:1.3em;margin-right:4px}
.card.bad{border:2px solid var(--drop);background:#fde8e8}
.mismatches li{margin:2px 0}
.ok{color:var(--ok)}
.controls{position:sticky;top:0;background:#fff;border-bottom:1px solid var(--line);padding-top:8px;padding-bottom:8px;
 display:flex;flex-wrap:wrap;gap:8px;align-items:center;z-index:2}
.controls input[type=search]{flex:1 1 240px;min-width:0;padding:6px 8px;font-size:15px}
.controls nav{flex-basis:100%;font-size:13px}
.controls nav a{margin-right:12px}
h2{font-size:1.15em;margin:20px 0 4px}
.desc{color:#444;max-width:70em;margin:4px 0}
.warn{color:var(--ref)}
.grid-wrap{overflow-x:auto;max-width:100%}
table.grid{border-collapse:collapse;margin:6px 0}
.grid th,.grid td{border:1px solid var(--line);padding:3px;vertical-align:top;text-align:left}
.grid thead th{background:#f3f3f3;font-weight:600;font-size:12px;max-width:14em}
.grid tbody th{background:#f8f8f8;font-weight:600;font-size:12px;white-space:nowrap;position:sticky;left:0;z-index:1}
td.none{color:#bbb;text-align:center}
.chip{display:block;width:100%;min-width:9em;text-align:left;margin:1px 0;padding:3px 6px;border-radius:4px;cursor:pointer;
 font:12px/1.3 system-ui,sans-serif;border:1px solid transparent;color:#111}
.chip .port{color:#555;font-size:11px}
.chip .seen{display:block;font-size:11px;overflow-wrap:break-word}
.chip:focus{outline:2px solid #1565c0;outline-offset:1px}
.v-allowed{background:#e3f3e5;border-color:#9ccc9f}
.v-dropped{background:#fbe3e3;border-color:#e8a3a3}
.v-refused{background:#fff0d6;border-color:#e9c07a}
.v-mixed{background:#efe3f6;border-color:#c6a3dc}
.v-skipped,.v-error{background:#eee;border-color:#bbb;color:#444}
.chip.mm{border:3px solid #000;box-shadow:0 0 0 2px #ffeb3b inset}
.mm-badge{display:block;font-weight:700;font-size:11px;color:#000;background:#ffeb3b;padding:0 3px;margin-top:2px}
.differs{font-weight:700;color:var(--mix);white-space:nowrap}
#panel{position:fixed;top:0;right:0;bottom:0;width:min(760px,62vw);background:#fff;border-left:2px solid #888;
 box-shadow:-4px 0 16px rgba(0,0,0,.2);overflow:auto;padding:8px 16px 24px;z-index:10}
#panel[hidden]{display:none}
#panel .close{position:sticky;top:0;float:right;font-size:18px;padding:2px 10px;cursor:pointer}
.flowlabel{font-weight:600;margin:2px 0 6px}
.intent{font-weight:400;color:#555;margin-left:8px}
.mm-line{font-weight:700;background:#ffeb3b;display:inline-block;padding:2px 8px;border:2px solid #000}
.ok-line{color:var(--ok);font-weight:600}
table.pvo{border-collapse:collapse;margin:6px 0;font-size:13px}
.pvo th,.pvo td{border:1px solid var(--line);padding:3px 6px;text-align:left;vertical-align:top;overflow-wrap:anywhere}
.pvo th{white-space:nowrap}
.problems{color:var(--drop)}
.diagram-slot{overflow-x:auto;border:1px solid #eee;padding:4px;margin:4px 0}
.diagram-slot svg{display:block}
.hops,pre,table.trace{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
table.trace{border-collapse:collapse}
.trace th,.trace td{border:1px solid var(--line);padding:2px 4px;text-align:left;vertical-align:top;overflow-wrap:anywhere}
.hops li{margin:2px 0;word-break:break-word}
pre{white-space:pre-wrap;word-break:break-word;background:#f6f6f6;padding:6px}
.hidden{display:none}
footer{color:#777;font-size:12px;padding:16px}
.chip.selected{outline:3px solid #1565c0;outline-offset:1px}
@media (max-width:700px){#panel{left:0;width:auto;border-left:0;padding:8px 10px 24px}.chip{min-width:7em}
 body{font-size:13px}.controls{position:static}}
"""

JS = """
(function(){
  var panel=document.getElementById('panel'), body=document.getElementById('panel-body');
  function openFlow(id){
    var t=document.getElementById('t-flow-'+id); if(!t) return;
    body.textContent=''; body.appendChild(t.content.cloneNode(true));
    body.querySelectorAll('.diagram-slot').forEach(function(slot){
      var d=document.getElementById('t-diagram-'+slot.getAttribute('data-diagram'));
      if(d) slot.appendChild(d.content.cloneNode(true));
    });
    document.querySelectorAll('.chip.selected').forEach(function(c){c.classList.remove('selected');});
    document.querySelectorAll('.chip[data-flow="'+id+'"]').forEach(function(c){c.classList.add('selected');});
    panel.hidden=false; panel.scrollTop=0;
    if(history.replaceState) history.replaceState(null,'','#flow-'+id);
    panel.querySelector('.close').focus();
  }
  function closePanel(){ panel.hidden=true; if(history.replaceState) history.replaceState(null,'',' '); }
  document.addEventListener('click',function(ev){
    var el=ev.target.closest('[data-flow]'); if(!el) return;
    ev.preventDefault(); openFlow(el.getAttribute('data-flow'));
  });
  panel.querySelector('.close').addEventListener('click',closePanel);
  document.addEventListener('keydown',function(ev){ if(ev.key==='Escape') closePanel(); });
  var q=document.getElementById('filter'), verdict=document.getElementById('verdict'),
      mm=document.getElementById('mismatch-only'), count=document.getElementById('count');
  var rows=Array.prototype.slice.call(document.querySelectorAll('tr[data-search]'));
  function apply(){
    var words=q.value.toLowerCase().split(/\\s+/).filter(Boolean), v=verdict.value, only=mm.checked, shown=0;
    rows.forEach(function(r){
      var s=r.getAttribute('data-search'), f=' '+r.getAttribute('data-flags')+' ';
      var ok=words.every(function(w){return s.indexOf(w)>=0;}) && (!v || f.indexOf(' '+v+' ')>=0)
             && (!only || f.indexOf(' mismatch ')>=0);
      r.classList.toggle('hidden',!ok); if(ok) shown++;
    });
    document.querySelectorAll('section.scenario, .compare h3').forEach(function(sec){
      var table=sec.tagName==='H3'?sec.nextElementSibling:sec;
      var any=table.querySelector('tr[data-search]:not(.hidden)');
      sec.classList.toggle('hidden',!any); if(sec.tagName==='H3') table.classList.toggle('hidden',!any);
    });
    count.textContent=shown+' of '+rows.length+' rows';
  }
  // a large page (thousands of rows) filters once typing pauses, not on every key
  var timer=null, later=rows.length>2000?function(){ clearTimeout(timer); timer=setTimeout(apply,150); }:apply;
  [q,verdict,mm].forEach(function(el){ el.addEventListener('input',later); el.addEventListener('change',later); });
  apply();
  var m=/^#flow-(\\d+-\\d+)$/.exec(location.hash); if(m) openFlow(m[1]);
})();
"""


def render_html(doc: dict[str, Any]) -> str:
    """The report page for a result document (explain or check)."""
    index = DiagramIndex.of(doc)
    flows: list[_Flow] = []
    by_scenario: list[list[_Flow]] = []
    ids: dict[int, _Flow] = {}
    for si, s in enumerate(doc.get("scenarios", [])):
        here = [_Flow(si, fi, s, f, index.by_flow.get((si, fi))) for fi, f in enumerate(s.get("flows", []))]
        by_scenario.append(here)
        flows += here
        ids.update((id(f.flow), f) for f in here)
    kind = "check" if any(f.observed for f in flows) else "explain (predictions only)"
    title = f"netiso report — backend {doc.get('backend', '?')}, profile {doc.get('profile', '?')}"
    verdicts = sorted({f.verdict for f in flows})
    out = ['<!doctype html><html lang="en"><head><meta charset="utf-8">'
           '<meta name="viewport" content="width=device-width, initial-scale=1">'
           "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
           "script-src 'unsafe-inline'; img-src data:\">"
           f'<link rel="icon" href="data:,"><title>{_e(title)}</title><style>{CSS}{controller_diff.CSS}</style>'
           "</head><body>",
           f"<header><h1>netiso report</h1><p>backend <code>{_e(doc.get('backend', '?'))}</code>, "
           f"profile <code>{_e(doc.get('profile', '?'))}</code>, {_e(kind)}. Click a cell for its path "
           "diagram, hops and evidence.</p></header>",
           _summary(doc, flows),
           '<div class="controls"><input id="filter" type="search" autocomplete="off" '
           'placeholder="filter: scenario, source, target, port, verdict, mismatch" aria-label="filter rows">'
           '<select id="verdict" aria-label="verdict"><option value="">any verdict</option>'
           + "".join(f'<option value="{_e(v)}">{_e(v)}</option>' for v in verdicts) + "</select>"
           '<label><input type="checkbox" id="mismatch-only"> mismatches only</label> <span id="count"></span>'
           '<nav><a href="#scenario-0">grids</a><a href="#compare-encapsulation">across modes</a>'
           '<a href="#compare-loadBalancer">across load balancers</a></nav></div><main>']
    out += [_grid(si, s, by_scenario[si]) for si, s in enumerate(doc.get("scenarios", []))]
    out.append(_comparisons(doc, ids))
    out.append('</main><aside id="panel" hidden aria-label="flow details"><button type="button" class="close" '
               'aria-label="close">×</button><div id="panel-body"></div></aside><div id="templates">')
    for did, diagram in index.diagrams.items():
        out.append(f'<template id="t-diagram-{_e(did)}">{svg(diagram, f"path diagram {did}", index.sources.get(did))}</template>')
    out += [_detail(f, doc) for f in flows]
    out.append(f"</div><footer>{len(index.diagrams)} distinct paths over {len(flows)} flows.</footer>"
               f"<script>{JS}</script></body></html>")
    return "".join(out) + "\n"


def write_html(directory: Path, doc: dict[str, Any]) -> Path:
    """Write ``index.html`` into ``directory``; returns its path."""
    path = directory / "index.html"
    path.write_text(render_html(doc), encoding="utf-8")
    return path
