"""Root pytest configuration: loads netiso's pytest plugin modules from ``fixtures/``.

The conformance suites live in ``suites/``; the project's own tests in ``tests/``.
"""

pytest_plugins: list[str] = []
