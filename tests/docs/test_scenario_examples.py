"""docs/scenarios.md stays true: its examples run, and it names every key and option netiso accepts.

The reference page is written by hand, so two things can rot: an example that no longer loads
(or whose ``expect`` the oracle no longer shares), and a key added to the loader that the page
never mentions. Examples are the fenced ``yaml`` blocks preceded by ``<!-- example: NAME -->``
(optionally ``exit: N`` for examples that show an error); each runs through ``netiso explain``
in-process, which exits 1 when the oracle disagrees with an ``expect`` and 2 on bad input. The
accepted keys are read from the loader's own allowed-keys tables with ``ast``, the command-line
options from the ``netiso`` argument parser itself.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from netiso.cli import main

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "scenarios.md"
LOADER_MODULES = [ROOT / "netiso" / "model" / n for n in ("loader.py", "scenario_objects.py", "scenario_flows.py",
                                                           "service_knob_input.py", "fields.py")]
EXAMPLE_RE = re.compile(r"<!-- example: ([a-z0-9-]+)(?: exit: (\d))? -->\n```yaml\n(.*?)```", re.S)


def examples(text: str) -> list[tuple[str, int, str]]:
    return [(name, int(code or 0), body) for name, code, body in EXAMPLE_RE.findall(text)]


def accepted_keys(sources: list[str]) -> set[str]:
    """Every key named in an allowed-keys table of a ``mapping(cur, value, KEYS, ...)`` call
    (a tuple literal, or a name bound to one in the same module)."""
    keys: set[str] = set()
    for source in sources:
        tree = ast.parse(source)
        bound: dict[str, ast.expr] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                bound[node.targets[0].id] = node.value
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and len(node.args) >= 3):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name != "mapping":
                continue
            table = node.args[2]
            if isinstance(table, ast.Name):
                table = bound.get(table.id, table)
            if isinstance(table, ast.Tuple):
                keys.update(e.value for e in table.elts if isinstance(e, ast.Constant) and isinstance(e.value, str))
    return keys


def mentioned(key: str, text: str) -> bool:
    """``key:`` in a YAML example or the key in backticks in the prose."""
    return re.search(rf"(^|[\s{{,])({re.escape(key)}):", text, re.M) is not None or f"`{key}`" in text


DOC_TEXT = DOC.read_text(encoding="utf-8")
EXAMPLES = examples(DOC_TEXT)


def test_the_page_has_runnable_examples_with_expectations() -> None:
    names = [name for name, _, _ in EXAMPLES]
    assert len(names) == len(set(names)), f"example names repeat: {names}"
    assert len(EXAMPLES) >= 8
    assert sum("expect:" in body for _, _, body in EXAMPLES) >= 6
    # every yaml block on the page is an example: none escapes the test
    assert DOC_TEXT.count("```yaml") == len(EXAMPLES)


@pytest.mark.parametrize(("name", "code", "body"), EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_documented_example_runs_through_explain(name: str, code: int, body: str, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / f"{name}.yaml"
    path.write_text(body, encoding="utf-8")
    out = tmp_path / "out.json"
    rc = main(["explain", str(path), "--json", str(out)])
    captured = capsys.readouterr()
    assert rc == code, f"{name}: exit {rc}\n{captured.out}\n{captured.err}"
    if code:
        assert f"{path}" in captured.err and "flows[0].to" in captured.err, captured.err
        return
    doc = json.loads(out.read_text(encoding="utf-8"))
    (scenario,) = doc["scenarios"]
    assert scenario["name"] == name
    flows = scenario["flows"]
    assert flows, f"{name} has no flows"
    expected = [f for f in flows if "expected" in f]
    assert len(expected) == body.count("expect:"), f"{name}: an expect: was not read"
    for f in expected:
        assert not f.get("disagreements"), f"{name}: {f['from']} -> {f['to']}: {f['disagreements']}"
        assert f["predicted"]["verdict"] == f["expected"].get("verdict", f["predicted"]["verdict"])


def test_key_reader_finds_the_loaders_tables() -> None:
    keys = accepted_keys([p.read_text(encoding="utf-8") for p in LOADER_MODULES])
    # one key from each table: top level, cluster, network, tenancy, whitelist, objects, flows, expect, port
    assert {"networkPolicies", "loadBalancer", "blockSize", "isolation", "peer", "externalTrafficPolicy",
            "controller", "intent", "forwardedFor", "protocol"} <= keys
    assert accepted_keys(["def f(c, v):\n    KEYS = ('a', 'b')\n    mapping(c, v, KEYS)\n"]) == {"a", "b"}


def test_every_key_the_loader_accepts_is_documented() -> None:
    keys = accepted_keys([p.read_text(encoding="utf-8") for p in LOADER_MODULES])
    missing = sorted(k for k in keys if not mentioned(k, DOC_TEXT))
    assert missing == [], f"docs/scenarios.md never mentions: {', '.join(missing)}"


def test_mention_check_can_fail() -> None:
    assert mentioned("blockSize", "    blockSize: 26\n")
    assert mentioned("nodes", "the `nodes` list")
    assert not mentioned("blockSize", "a block size of 26")


def cli_options() -> set[tuple[str, str]]:
    """(command, --option) for every long option of every ``netiso`` subcommand."""
    import argparse

    from netiso.cli import _parser

    def walk(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> set[tuple[str, str]]:
        out: set[tuple[str, str]] = set()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    out |= walk(sub, (*path, name))
            else:
                out |= {(" ".join(path), o) for o in action.option_strings if o.startswith("--") and o != "--help"}
        return out

    return walk(_parser(), ())


def test_every_command_line_option_is_documented() -> None:
    options = cli_options()
    assert {("check", "--jobs"), ("explain", "--paths"), ("lab up", "--scenario")} <= options
    missing = sorted(f"netiso {cmd} {opt}" for cmd, opt in options
                     if re.search(rf"(?<![-\w]){re.escape(opt)}(?![-\w])", DOC_TEXT) is None)
    assert missing == [], f"docs/scenarios.md never mentions: {', '.join(missing)}"
