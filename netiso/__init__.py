"""netiso: an end-to-end conformance suite for Kubernetes network isolation.

Layers, imported one way only: model -> oracle -> backends -> probe/report -> fixtures/suites/cli.
"""

__version__ = "0.1.0"
