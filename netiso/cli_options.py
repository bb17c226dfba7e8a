"""Parsing of the repeatable ``KEY=VALUE`` options shared by the CLI and the pytest plugin.

``--node-map worker=node-a,worker2=node-b`` and ``--client alice='docker exec -i c1'`` reach the
backends as dicts; a malformed pair is bad input (exit 2) naming the option and the expected form.
"""

from __future__ import annotations

from collections.abc import Iterable

from netiso.model.errors import InputError


def parse_pairs(values: Iterable[str], option: str, form: str, *, split_commas: bool = True) -> dict[str, str]:
    """``["a=b,c=d", "e=f"]`` -> ``{"a": "b", "c": "d", "e": "f"}``; duplicates and blanks are errors.

    >>> parse_pairs(["worker=node-a,worker2=node-b"], "--node-map", "N=M")
    {'worker': 'node-a', 'worker2': 'node-b'}
    >>> parse_pairs(["alice=docker exec -i c1"], "--client", "NAME=COMMAND", split_commas=False)
    {'alice': 'docker exec -i c1'}
    """
    out: dict[str, str] = {}
    for value in values:
        for item in (value.split(",") if split_commas else [value]):
            key, sep, val = item.partition("=")
            key, val = key.strip(), val.strip()
            if not sep or not key or not val:
                raise InputError(f"{option} {item!r}: expected {form}")
            if key in out:
                raise InputError(f"{option}: {key} is given twice ({out[key]!r} and {val!r})")
            out[key] = val
    return out


def parse_names(values: Iterable[str], option: str, *, known: Iterable[str], known_flag: str) -> tuple[str, ...]:
    """``["alice,bob", "carol"]`` -> ``("alice", "bob", "carol")``, each one a name of ``known``.

    A name that ``known_flag`` did not map is bad input: it would silently describe no host.

    >>> parse_names(["alice,bob"], "--client-no-pod-routes", known=["alice", "bob"], known_flag="--client")
    ('alice', 'bob')
    >>> parse_names(["carol"], "--x", known=["alice"], known_flag="--client")
    Traceback (most recent call last):
    ...
    netiso.model.errors.InputError: --x carol: no --client carol=COMMAND was given (mapped: alice); map the host first
    """
    known = list(known)
    out: list[str] = []
    for value in values:
        for name in (n.strip() for n in value.split(",")):
            if not name:
                raise InputError(f"{option} {value!r}: expected NAME[,NAME...]")
            if name not in known:
                raise InputError(f"{option} {name}: no {known_flag} {name}=COMMAND was given "
                                 f"(mapped: {', '.join(known) or 'none'}); map the host first")
            if name not in out:
                out.append(name)
    return tuple(out)
