"""Parsing of real batch-script output captured in ``tests/kube/samples/`` (see capture.py there).

Each sample is what dash or busybox printed for one probe in a known situation with the real
curl / netcat-openbsd; the situation (a closed port, a DROP rule, a gateway's status) decides
the verdict. Then the same output, damaged: garbage, interleaving, missing and foreign lines.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from netiso.backends.kube.probing import LINE_TAG, ClusterProbe, decode_field, parse_batch_output

SAMPLES = Path(__file__).resolve().parent / "samples"
SAMPLE_FILES = sorted(SAMPLES.glob("*.json"))

# What each situation is, hence its verdict (the kube backend's contract in probing.py).
VERDICT_OF_SITUATION = {
    "tcp-200": "allowed",  # netexec answered every URL
    "tcp-second-connection": "allowed",  # answered, but over two connections (flagged)
    "tcp-refused": "refused",  # closed port: RST
    "tcp-timeout": "dropped",  # DROP rule: connect timeout
    "udp-answer": "allowed",
    "udp-icmp-refused": "refused",  # closed UDP port: ICMP port unreachable
    "udp-timeout": "dropped",  # DROP rule: silence
    "http-502": "refused",  # a gateway saw its upstream refuse
    "http-503": "refused",  # ... or had no upstream
    "http-504": "dropped",  # ... or timed out on it
    "http-404": "error",  # not an answer netexec gives
    "tcp-mixed-200-504": "error",  # one request answered, the next timed out upstream
}


def load(path: Path) -> tuple[dict, list[ClusterProbe]]:  # type: ignore[type-arg]
    doc = json.loads(path.read_text())
    return doc, [ClusterProbe(**p) for p in doc["probes"]]


def test_samples_cover_every_situation_for_dash_and_busybox() -> None:
    names = {p.name.split(".")[0] for p in SAMPLE_FILES}
    shells = {p.name.split(".")[1] for p in SAMPLE_FILES}
    assert names == set(VERDICT_OF_SITUATION)
    assert shells == {"dash", "busybox"}


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda p: p.stem)
def test_captured_output_parses_to_the_verdict_of_its_situation(path: Path) -> None:
    doc, probes = load(path)
    [result] = parse_batch_output(doc["stdout"], doc["stderr"], probes)
    assert result.id == probes[0].id
    assert result.verdict == VERDICT_OF_SITUATION[doc["situation"]], result.detail
    if result.verdict == "allowed":
        assert result.client_ip == "127.0.0.1"
        assert result.hostname and result.hostname.startswith("pod-")
    else:
        assert result.client_ip is None and result.detail


def test_captured_ingress_sample_carries_host_and_forwarded_for() -> None:
    doc, probes = load(SAMPLES / "tcp-200.dash.json")
    [result] = parse_batch_output(doc["stdout"], doc["stderr"], probes)
    assert result.forwarded_for == "203.0.113.7"
    assert "curl 7.88.1" in doc["tools"]["curl"]


def _combined() -> tuple[str, list[ClusterProbe], list[str]]:
    """Every dash sample's result line, renumbered into one batch of many probes."""
    lines, probes, verdicts = [], [], []
    for path in sorted(SAMPLES.glob("*.dash.json")):
        doc, [probe] = load(path)
        line = next(ln for ln in doc["stdout"].splitlines() if ln.startswith(LINE_TAG))
        lines.append(line.replace(f"{LINE_TAG} 0 ", f"{LINE_TAG} {len(probes)} ", 1))
        probes.append(probe)
        verdicts.append(VERDICT_OF_SITUATION[doc["situation"]])
    return "\n".join(lines), probes, verdicts


def test_garbage_and_reordered_lines_do_not_change_the_results() -> None:
    text, probes, verdicts = _combined()
    lines = text.splitlines()
    noisy = ["sh: 1: cannot create /etc/x: Permission denied", "\x00\xff binary junk", f"{LINE_TAG} not-a-number x=1"]
    for i, line in enumerate(reversed(lines)):
        noisy.append(f"junk-without-newline{i}{line}" if i % 2 else line)
        noisy.append("W 200 1 0 1234 0.001")
    noisy.append("NETISO-END 12")
    results = parse_batch_output("\n".join(noisy), "some stderr", probes)
    assert [r.verdict for r in results] == verdicts


def test_a_missing_line_is_an_error_never_allowed() -> None:
    text, probes, _ = _combined()
    allowed_index = next(i for i, p in enumerate(probes) if p.id == "tcp-200")
    kept = [ln for ln in text.splitlines() if not ln.startswith(f"{LINE_TAG} {allowed_index} ")]
    results = parse_batch_output("\n".join(kept) + "\nNETISO-END 12\n", "", probes)
    assert results[allowed_index].verdict == "error"
    assert results[allowed_index].detail == "no result line"


def test_a_run_that_did_not_finish_says_so_and_quotes_stderr() -> None:
    _, probes, _ = _combined()
    results = parse_batch_output("", "command terminated with exit code 137\n", probes)
    assert {r.verdict for r in results} == {"error"}
    assert results[0].detail == "no result line (the batch script did not finish): command terminated with exit code 137"


def test_a_line_for_another_probe_id_is_ignored() -> None:
    doc, probes = load(SAMPLES / "tcp-200.dash.json")
    other = [ClusterProbe("someone-else", probes[0].dst_ip, probes[0].dst_port)]
    [result] = parse_batch_output(doc["stdout"], doc["stderr"], other)
    assert result.verdict == "error"


def test_a_truncated_line_is_an_error_not_a_pass() -> None:
    doc, probes = load(SAMPLES / "tcp-200.dash.json")
    line = next(ln for ln in doc["stdout"].splitlines() if ln.startswith(LINE_TAG))
    cut = line[: line.index(" o1=") + 8]  # the body of /clientip cut mid-base64
    [result] = parse_batch_output(cut, "", probes)
    assert result.verdict == "error"


def test_a_line_without_exit_status_is_an_error() -> None:
    doc, probes = load(SAMPLES / "tcp-200.dash.json")
    line = next(ln for ln in doc["stdout"].splitlines() if ln.startswith(LINE_TAG))
    rc_field = next(part for part in line.split() if part.startswith("rc="))
    [result] = parse_batch_output(line.replace(rc_field, "rc="), "", probes)
    assert result.verdict == "error" and "exit status" in result.detail


def test_fields_decode_from_base64_and_hex() -> None:
    assert decode_field("bcG9kLWE=") == decode_field("h706f642d61") == b"pod-a"
    with pytest.raises(ValueError):
        decode_field("zzz")
    with pytest.raises(ValueError):
        decode_field("b###")
