"""The embedded kernel lab: a real Linux datapath in network namespaces on one host."""
