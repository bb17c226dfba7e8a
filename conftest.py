"""Root pytest configuration: loads netiso's pytest plugin modules from ``fixtures/``.

The conformance suites live in ``suites/`` (``pytest suites``); the project's own tests in
``tests/``. The plugins only add ``--netiso-*`` options and fixtures, so they are harmless for
``tests/``.
"""

pytest_plugins = ["fixtures.options", "fixtures.backend", "fixtures.scenarios"]


def pytest_configure(config) -> None:  # type: ignore[no-untyped-def]
    config.addinivalue_line("markers", "lab: needs root and builds network namespaces")
