"""What an HTTP status means for a probe's verdict: one convention for every backend.

The lab's probe agent and the cluster backends' curl batches both read an ingress controller's
answer this way: 502/503 mean the upstream refused (RST, ICMP reject, no endpoints), 504 that it
never answered (dropped). Kept import-free, so the probe agent starts fast.
"""

from __future__ import annotations


def verdict_for_status(status: int) -> str:
    """Verdict for an HTTP status a probe got; gateway errors carry the upstream's fate.

    >>> [verdict_for_status(s) for s in (200, 502, 504, 404)]
    ['allowed', 'refused', 'dropped', 'error']
    """
    if 200 <= status < 300:
        return "allowed"
    if status in (502, 503):
        return "refused"
    if status == 504:
        return "dropped"
    return "error"


def health_check_verdict(verdict: str, status: int | None) -> str:
    """A health-check flow's verdict: ``allowed`` when kube-proxy's health server answered, 200
    (local endpoints) and 503 (none) alike; otherwise the probe's own verdict.

    >>> health_check_verdict("refused", 503), health_check_verdict("dropped", None)
    ('allowed', 'dropped')
    """
    return "allowed" if status in (200, 503) else verdict
