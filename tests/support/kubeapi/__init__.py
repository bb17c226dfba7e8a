"""A fake Kubernetes API server on 127.0.0.1 for testing netiso's kube backend with the official client.

Why: no cluster exists on this machine, yet the kube backend's whole API conversation must be
exercised over real HTTP with the ``kubernetes`` client unpatched. ``FakeCluster`` starts a server
(server.py; discovery documents in discovery_docs.py, watches in watching.py) over an in-memory
store (store.py) with controller emulation (controllers.py),
``seed_cluster`` fills it like a kind cluster with Calico and MetalLB/OpenELB (seed.py),
``seed_fresh_kind`` like a kind cluster just created without a CNI, whose add-ons are then installed
through the API and acted on by the workload controllers (workloads.py), and
exec is answered by a test-supplied handler over the v4/v5 channel websocket (exec_ws.py).
Time passes as clients read (lifecycle.py: pods start, workloads roll out, CRDs get Established,
namespaces and pods terminate over later reads); ``FakeCluster.timing`` tunes it per test.
Use it through the ``fake_cluster`` pytest fixture (fixture.py).
"""

from .cluster import CONTEXT, FakeCluster
from .exec_ws import ExecCall, ExecReply
from .lifecycle import Timing
from .seed import seed_cluster, seed_fresh_kind
from .server import RecordedRequest

__all__ = ["CONTEXT", "ExecCall", "ExecReply", "FakeCluster", "RecordedRequest", "Timing", "seed_cluster",
           "seed_fresh_kind"]
