"""Path diagrams: the boxes-and-arrows picture of how one flow crosses the cluster.

The founding article explains project isolation with one picture per case: the client, the entry
node, the DNAT, the SNAT, the tunnel, the node that delivers, the pod, and where the policy looks.
This module draws that picture for every flow from the prediction's structured hops
(``predicted.hops`` of the JSON document, see :func:`netiso.report.document.hops_json`), so no hop
text is parsed: a box per place (client, node, pod), inside it what happened there (kube-proxy's
service match, DNAT, SNAT with the address it picked, the policy decision with the source it saw),
an arrow per move with the packet's addresses on the wire and the device (eth0, tunl0,
vxlan.calico, the pod's veth), and the box where the walk ends marked allowed / dropped / refused
in words, not only in colour. A flow that branches over endpoints draws one lane per outcome from
the shared prefix.

Flows that share a path share a diagram: the diagram's content carries addresses and rules but no
ports, and the flow's own origin (a client or a pod) is drawn as "the source" (its name and
address listed in the first box), so TCP and UDP to the same pod, or alice and bob both entering
on worker2 and both arriving as tunnel:worker2, give the same :attr:`Diagram.key`. A node origin
keeps its name: the node is also where its packet is processed. When a document carries the deciding rule
(``predicted.decidedBy`` / ``observed.decidedBy``, issue 8) it is drawn as a note; without those
keys the diagram is the same picture without the note.

Two renderings: Mermaid ``flowchart LR`` for ``matrix.md`` (GitHub renders it) and inline SVG
(top to bottom, drawn here: rectangles, lines, text; no script, no font or file fetched) for the
HTML report.
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass, field
from html import escape
from typing import Any

SOURCE = "the source"
ENDS = {"allowed": "✓ answers here", "dropped": "✗ dropped here", "refused": "✗ refused here"}


@dataclass(frozen=True)
class Box:
    id: str
    place: str  # client:alice, node:worker, pod:shop/web@worker
    lines: tuple[str, ...]  # what happened at this place, in order
    end: str | None = None  # allowed | dropped | refused: the walk of some outcome ends here
    role: str = "other"  # client | node | pod | other


def _role(place: str) -> str:
    head = place.split(":", 1)[0]
    return head if head in ("client", "node", "pod") else "other"


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    lines: tuple[str, ...]  # device, then the packet's addresses on the wire


@dataclass(frozen=True)
class Diagram:
    boxes: tuple[Box, ...]
    edges: tuple[Edge, ...]
    notes: tuple[str, ...] = ()  # "decided by" labels

    @property
    def key(self) -> str:
        """The identity of the path: equal for flows that cross the cluster the same way."""
        return json.dumps([[(b.id, b.place, b.lines, b.end, b.role) for b in self.boxes],
                           [(e.src, e.dst, e.lines) for e in self.edges], list(self.notes)], ensure_ascii=False)


# ---------------------------------------------------------------------- model
def _addr(value: dict[str, Any] | None) -> str:
    if not value:
        return "?"
    return f"{value['symbol']} ({value['ip']})" if value.get("symbol") != value.get("ip") else value["ip"]


def _sources(hop: dict[str, Any]) -> str:
    return " or ".join(_addr(a) for a in [hop.get("src"), *hop.get("srcAlternatives", [])])


def _lines(hop: dict[str, Any]) -> list[str]:
    """What a hop did at its place; none when the arrow out of the box says it all."""
    line = _line(hop)
    if line is None:
        return []
    pol = hop.get("policy") or {}
    if hop.get("step") == "policy" and pol.get("direction") == "ingress":
        return [line, f"policy saw {_addr(hop.get('src'))}"]
    return [line]


def _line(hop: dict[str, Any]) -> str | None:
    kind = hop.get("step")
    if kind in ("send", "tunnel", "forward"):
        return None
    if kind == "arp":
        if hop.get("verdict"):
            return f"ARP for VIP {hop.get('dst', {}).get('ip', '?')}: no node answers"
        return f"ARP for VIP {hop.get('dst', {}).get('ip', '?')} answered by {hop.get('to')}"
    if kind == "service":
        return f"kube-proxy {hop.get('rule', 'service')}"
    if kind == "dnat":
        return f"DNAT → {_addr(hop.get('dst'))}"
    if kind == "snat":
        return f"SNAT {hop.get('rule', 'MASQUERADE')} → {_sources(hop)}"
    if kind == "policy" and hop.get("policy"):
        pol = hop["policy"]
        where = pol.get("direction") or "?"
        if not pol.get("allowed"):
            what = f"{where} policy DROPS ({', '.join(pol.get('policies') or []) or 'isolated'})"
        elif pol.get("isolated"):
            what = f"{where} policy admits: {pol.get('admittedBy')}"
        else:
            what = f"{where}: no policy selects the pod, allowed"
        return what
    if kind == "filter":
        return f"kube-proxy {hop.get('rule', 'filter')} → {hop.get('verdict')}"
    if kind == "deliver":
        return f"answers; sees {_sources(hop)}"
    if kind == "proxy" and hop.get("to"):
        return f"nginx proxies to {_addr(hop.get('dst'))} from {_addr(hop.get('src'))}"
    return str(hop.get("detail", kind))  # drop, refuse, proxy errors, notes: the hop's own sentence


def _edge_lines(last: dict[str, Any], nxt_place: str, place: str) -> tuple[str, ...]:
    via = last.get("via") if last.get("step") in ("send", "arp", "tunnel", "forward", "snat") else None
    if via in (None, "cali"):
        via = "veth" if nxt_place.startswith("pod:") or place.startswith("pod:") else None
    head = {"vxlan.calico": "VXLAN (vxlan.calico)", "tunl0": "IP-in-IP (tunl0)", "eth0": "node network (eth0)",
            "router": "external router", "veth": "pod veth"}.get(via or "", via or "")
    lines = [head] if head else []
    if last.get("src") or last.get("dst"):
        lines.append(f"src {_sources(last)}")
        lines.append(f"dst {_addr(last.get('dst'))}")
    return tuple(lines)


@dataclass
class _Builder:
    origin: tuple[str, str] | None = None  # (symbol, address text) drawn as "the source"
    boxes: dict[tuple[Any, ...], Box] = field(default_factory=dict)
    edges: dict[tuple[str, str], Edge] = field(default_factory=dict)

    def _norm(self, text: str) -> str:
        return text.replace(self.origin[1], SOURCE) if self.origin else text

    def lane(self, hops: list[dict[str, Any]]) -> None:
        groups: list[tuple[str, list[dict[str, Any]]]] = []
        for hop in hops:
            place = hop.get("at") or "?"
            if groups and groups[-1][0] == place:
                groups[-1][1].append(hop)
            else:
                groups.append((place, [hop]))
        prefix: tuple[Any, ...] = ()
        previous: Box | None = None
        prev_group: tuple[str, list[dict[str, Any]]] | None = None
        for i, (place, group) in enumerate(groups):
            lines = tuple(self._norm(x) for h in group for x in _lines(h))
            end = group[-1].get("verdict") if i == len(groups) - 1 else None
            if end is None and i == len(groups) - 1 and group[-1].get("step") == "deliver":
                end = "allowed"
            prefix = (*prefix, (place, lines, end))
            box = self.boxes.get(prefix)
            if box is None:
                shown = SOURCE if self.origin and place == self.origin[0] else place
                box = Box(f"b{len(self.boxes)}", shown, lines, end, _role(place))
                self.boxes[prefix] = box
            if previous is not None and prev_group is not None:
                label = tuple(self._norm(x) for x in _edge_lines(prev_group[1][-1], place, prev_group[0]))
                self.edges.setdefault((previous.id, box.id), Edge(previous.id, box.id, label))
            previous, prev_group = box, (place, group)


def _rule_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        parts = [str(value[k]) for k in ("table", "chain", "verdict", "rule", "comment", "policy") if value.get(k)]
        return " ".join(parts) if parts else json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(value, list):
        return "; ".join(_rule_text(v) for v in value)
    return str(value)


def flow_origin(flow: dict[str, Any]) -> str | None:
    """The address text of a client or pod origin ("client:alice (198.18.0.100)"), drawn as
    :data:`SOURCE` in the flow's diagram; None for a node origin or without hops."""
    hops = (flow.get("predicted") or {}).get("hops") or []
    first = hops[0] if hops else {}
    if not first.get("src") or not str(first.get("at", "")).startswith(("client:", "pod:")):
        return None
    return _addr(first["src"])


def flow_diagram(flow: dict[str, Any]) -> Diagram | None:
    """The diagram of one flow of a result document; None when it has no ``predicted.hops``
    (a document written before they existed)."""
    pred = flow.get("predicted") or {}
    hops = pred.get("hops")
    if not hops:
        return None
    lanes: dict[int, list[dict[str, Any]]] = {}
    for hop in hops:
        lanes.setdefault(int(hop.get("outcome", 1)), []).append(hop)
    origin = flow_origin(flow)
    builder = _Builder((str(hops[0].get("at")), origin) if origin else None)
    for number in sorted(lanes):
        builder.lane(lanes[number])
    notes = []
    if pred.get("decidedBy"):
        notes.append(f"decided by (predicted): {_rule_text(pred['decidedBy'])}")
    obs = flow.get("observed") or {}
    if obs.get("decidedBy"):
        notes.append(f"decided by (observed): {_rule_text(obs['decidedBy'])}")
    return Diagram(tuple(builder.boxes.values()), tuple(builder.edges.values()), tuple(notes))


@dataclass
class DiagramIndex:
    """The distinct diagrams of a document, numbered P1, P2, … in order of first use."""

    diagrams: dict[str, Diagram] = field(default_factory=dict)  # id -> diagram
    sources: dict[str, list[str]] = field(default_factory=dict)  # id -> what "the source" stands for
    by_flow: dict[tuple[int, int], str] = field(default_factory=dict)  # (scenario, flow) index -> id
    _by_key: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, doc: dict[str, Any]) -> DiagramIndex:
        index = cls()
        for si, scenario in enumerate(doc.get("scenarios", [])):
            for fi, flow in enumerate(scenario.get("flows", [])):
                diagram = flow_diagram(flow)
                if diagram is None:
                    continue
                did = index._by_key.get(diagram.key)
                if did is None:
                    did = f"P{len(index.diagrams) + 1}"
                    index._by_key[diagram.key] = did
                    index.diagrams[did] = diagram
                index.by_flow[(si, fi)] = did
                origin = flow_origin(flow)
                if origin and origin not in index.sources.setdefault(did, []):
                    index.sources[did].append(origin)
        return index

    def flows_of(self, did: str) -> list[tuple[int, int]]:
        return [k for k, v in self.by_flow.items() if v == did]


# ---------------------------------------------------------------------- Mermaid
def _mm(text: str) -> str:
    """Text safe inside a quoted Mermaid label (entity codes for what Mermaid would parse)."""
    out = text.replace("#", "#35;").replace("&", "#38;").replace('"', "#quot;")
    return out.replace("<", "#60;").replace(">", "#62;").replace("|", "#124;")


def _body(box: Box, sources: list[str] | None) -> list[str]:
    """The box's lines; "the source" lists what it stands for."""
    head = [("" if i == 0 else "or ") + s for i, s in enumerate(sources or [])] if box.place == SOURCE else []
    return head + list(box.lines)


def mermaid(diagram: Diagram, sources: list[str] | None = None) -> str:
    """The diagram as a Mermaid ``flowchart LR`` (without the code fence); ``sources``: what
    "the source" stands for (:attr:`DiagramIndex.sources`)."""
    lines = ["flowchart LR"]
    for b in diagram.boxes:
        body = [f"<b>{_mm(b.place)}</b>", *(_mm(x) for x in _body(b, sources))]
        if b.end:
            body.append(f"<b>{_mm(ENDS[b.end])}</b>" if b.end in ENDS else _mm(b.end))
        lines.append(f'  {b.id}["{"<br/>".join(body)}"]')
    for e in diagram.edges:
        label = "<br/>".join(_mm(x) for x in e.lines)
        lines.append(f'  {e.src} -->|"{label}"| {e.dst}' if label else f"  {e.src} --> {e.dst}")
    for i, note in enumerate(diagram.notes):
        lines.append(f'  note{i}[/"{_mm(note)}"/]')
        if diagram.boxes:
            lines.append(f"  {diagram.boxes[-1].id} -.- note{i}")
    lines += ["  classDef client fill:#eef3fb,stroke:#4a6fa5", "  classDef node fill:#f6f6f6,stroke:#777",
              "  classDef pod fill:#f1f7f4,stroke:#6b8e84",
              "  classDef dropped fill:#fde8e8,stroke:#c62828,stroke-width:3px,stroke-dasharray:6 3",
              "  classDef refused fill:#fff1dc,stroke:#c77700,stroke-width:3px,stroke-dasharray:6 3",
              "  classDef allowed stroke:#2e7d32,stroke-width:3px"]
    for role in ("client", "node", "pod"):
        ids = [b.id for b in diagram.boxes if b.role == role]
        if ids:
            lines.append(f"  class {','.join(ids)} {role}")
    for end in ("allowed", "dropped", "refused"):
        ids = [b.id for b in diagram.boxes if b.end == end]
        if ids:
            lines.append(f"  class {','.join(ids)} {end}")
    return "\n".join(lines)


# ---------------------------------------------------------------------- SVG
BOX_W = 310
CHARS = 46  # characters per line at 11px monospace in BOX_W
LINE_H = 14
PAD = 8
GAP_X = 30
FILL = {"client": "#eef3fb", "node": "#f6f6f6", "pod": "#f1f7f4", "other": "#fafafa"}
STROKE = {"client": "#4a6fa5", "node": "#777777", "pod": "#6b8e84", "other": "#999999"}
END_STROKE = {"allowed": "#2e7d32", "dropped": "#c62828", "refused": "#c77700"}
END_FILL = {"dropped": "#fde8e8", "refused": "#fff1dc"}


def _wrap(lines: tuple[str, ...] | list[str], width: int = CHARS) -> list[str]:
    out: list[str] = []
    for line in lines:
        out.extend(textwrap.wrap(line, width, break_long_words=True, break_on_hyphens=False,
                                 subsequent_indent="  ") or [""])
    return out


def svg(diagram: Diagram, title: str = "path diagram", sources: list[str] | None = None) -> str:
    """The diagram as one inline ``<svg>`` element, top to bottom, one column per branch."""
    parents: dict[str, str] = {}
    children: dict[str, list[str]] = {}
    for e in diagram.edges:
        parents.setdefault(e.dst, e.src)
        children.setdefault(e.src, []).append(e.dst)
    depth: dict[str, int] = {}
    col: dict[str, int] = {}
    next_col = 0
    for b in diagram.boxes:  # boxes come in lane order: a new column where a lane forks
        p = parents.get(b.id)
        depth[b.id] = depth[p] + 1 if p else 0
        if p is None:
            col[b.id] = 0
        elif children[p][0] == b.id:
            col[b.id] = col[p]
        else:
            next_col += 1
            col[b.id] = next_col
    body = {b.id: [("title", x) for x in _wrap([b.place])] + [("line", x) for x in _wrap(_body(b, sources))]
            + ([("end", ENDS.get(b.end, b.end))] if b.end else []) for b in diagram.boxes}
    edge_text = {e.dst: _wrap(e.lines, CHARS - 6) for e in diagram.edges}  # beside the arrow, inside the column
    rows = max(depth.values(), default=-1) + 1
    row_h = [max((len(body[b]) * LINE_H + 2 * PAD for b in depth if depth[b] == r), default=0) for r in range(rows)]
    gap_h = [max((len(edge_text.get(b, [])) * LINE_H + 22 for b in depth if depth[b] == r), default=22)
             for r in range(rows)]
    y_of = []
    y = 6
    for r in range(rows):
        if r:
            y += gap_h[r]
        y_of.append(y)
        y += row_h[r]
    width = (next_col + 1) * (BOX_W + GAP_X) - GAP_X + 12
    note_lines = _wrap(list(diagram.notes), int((width - 12) * CHARS / BOX_W))
    height = y + (len(note_lines) * LINE_H + 16 if note_lines else 0) + 6
    out = [f'<svg class="diagram" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" '
           f'font-family="ui-monospace, SFMono-Regular, Menlo, Consolas, monospace" font-size="11">',
           f"<title>{escape(title)}</title>"]
    pos = {b.id: (6 + col[b.id] * (BOX_W + GAP_X), y_of[depth[b.id]]) for b in diagram.boxes}
    for e in diagram.edges:
        (x1, y1), (x2, y2) = pos[e.src], pos[e.dst]
        h1 = len(body[e.src]) * LINE_H + 2 * PAD
        sx, sy, ex, ey = x1 + 24, y1 + h1, x2 + 24, y2 - 2
        path = f"M{sx},{sy} L{sx},{ey - 10} L{ex},{ey - 10} L{ex},{ey}" if sx != ex else f"M{sx},{sy} L{ex},{ey}"
        out.append(f'<path d="{path}" fill="none" stroke="#555" stroke-width="1.5"/>')
        out.append(f'<polygon points="{ex - 5},{ey - 8} {ex + 5},{ey - 8} {ex},{ey}" fill="#555"/>')
        for i, text in enumerate(edge_text.get(e.dst, [])):
            out.append(f'<text x="{ex + 10}" y="{ey - gap_h[depth[e.dst]] + 16 + i * LINE_H}" fill="#333">'
                       f"{escape(text)}</text>")
    for b in diagram.boxes:
        x, y0 = pos[b.id]
        h = len(body[b.id]) * LINE_H + 2 * PAD
        stroke = END_STROKE.get(b.end or "", STROKE[b.role])
        fill = END_FILL.get(b.end or "", FILL[b.role])
        dash = ' stroke-dasharray="6 3"' if b.end in ("dropped", "refused") else ""
        width_px = 3 if b.end else 1.2
        out.append(f'<g class="box {escape(b.role)}{" end-" + escape(b.end) if b.end else ""}">'
                   f'<rect x="{x}" y="{y0}" width="{BOX_W}" height="{h}" rx="6" fill="{fill}" '
                   f'stroke="{stroke}" stroke-width="{width_px}"{dash}/>')
        for i, (kind, text) in enumerate(body[b.id]):
            weight = ' font-weight="bold"' if kind in ("title", "end") else ""
            color = END_STROKE.get(b.end or "", "#222") if kind == "end" else "#222"
            out.append(f'<text x="{x + PAD}" y="{y0 + PAD + 11 + i * LINE_H}" fill="{color}"{weight}>'
                       f"{escape(text)}</text>")
        out.append("</g>")
    for i, text in enumerate(note_lines):
        out.append(f'<text x="6" y="{y + 20 + i * LINE_H}" fill="#5b2c83" font-style="italic">{escape(text)}</text>')
    out.append("</svg>")
    return "".join(out)
