"""Rule sets for ``iptables-restore``, merged from several generators (kube-proxy, Calico).

Each generator (kube-proxy rules, Calico policy rules) returns a :class:`RuleSet`: its own
chains and rules plus the jumps it hooks into the built-in chains. On a real node Calico keeps
its hooks first in every built-in chain (it inserts and re-checks), kube-proxy's come after;
:func:`merge` keeps the argument order so the lab reproduces that order. The result is one
restore document per node, loaded atomically as kube-proxy does with ``iptables-restore``.

>>> rs = RuleSet()
>>> rs.table("nat").chain("KUBE-SERVICES")
>>> rs.table("nat").hook("PREROUTING", "-j KUBE-SERVICES")
>>> print("\\n".join(render_restore(rs).splitlines()[5:7]))
:KUBE-SERVICES - [0:0]
-A PREROUTING -j KUBE-SERVICES
"""

from __future__ import annotations

from dataclasses import dataclass, field

BUILTIN_CHAINS: dict[str, tuple[str, ...]] = {
    "raw": ("PREROUTING", "OUTPUT"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
}
TABLE_ORDER = ("raw", "mangle", "filter", "nat")


@dataclass
class Table:
    """One table: declared custom chains, their rules, and hooks into built-in chains."""

    chains: list[str] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)  # full "-A CHAIN ..." lines of custom chains
    hooks: dict[str, list[str]] = field(default_factory=dict)  # built-in chain -> rule specs

    def chain(self, name: str) -> None:
        if name not in self.chains:
            self.chains.append(name)

    def add(self, chain: str, spec: str) -> None:
        """Append ``-A chain spec`` (the chain is declared if needed)."""
        self.chain(chain)
        self.rules.append(f"-A {chain} {spec}")

    def hook(self, builtin: str, spec: str) -> None:
        """Append a rule to a built-in chain, e.g. ``hook("FORWARD", "-j cali-FORWARD")``."""
        self.hooks.setdefault(builtin, []).append(spec)


@dataclass
class RuleSet:
    tables: dict[str, Table] = field(default_factory=dict)

    def table(self, name: str) -> Table:
        if name not in BUILTIN_CHAINS:
            raise ValueError(f"unknown iptables table {name!r}")
        return self.tables.setdefault(name, Table())


def merge(*rulesets: RuleSet) -> RuleSet:
    """Combine rule sets; hooks keep argument order (pass Calico's first, as on a real node)."""
    out = RuleSet()
    for rs in rulesets:
        for tname, table in rs.tables.items():
            dst = out.table(tname)
            for chain in table.chains:
                dst.chain(chain)
            dst.rules.extend(table.rules)
            for builtin, specs in table.hooks.items():
                dst.hooks.setdefault(builtin, []).extend(specs)
    return out


def render_restore(ruleset: RuleSet) -> str:
    """The full ``iptables-restore`` document (tables are flushed and rebuilt atomically)."""
    lines: list[str] = []
    for tname in TABLE_ORDER:
        table = ruleset.tables.get(tname)
        if table is None:
            continue
        lines.append(f"*{tname}")
        lines.extend(f":{b} ACCEPT [0:0]" for b in BUILTIN_CHAINS[tname])
        lines.extend(f":{c} - [0:0]" for c in table.chains)
        for builtin in BUILTIN_CHAINS[tname]:
            lines.extend(f"-A {builtin} {spec}" for spec in table.hooks.get(builtin, []))
        lines.extend(table.rules)
        lines.append("COMMIT")
    return "\n".join(lines) + "\n"
