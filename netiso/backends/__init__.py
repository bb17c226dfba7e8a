"""Backends realize a resolved Topology and let probes run through it (lab, kind, kube)."""
