"""The fake API server's fixture for these tests.

Imported rather than listed in ``pytest_plugins``: pytest refuses ``pytest_plugins`` in a conftest
below the rootdir when the whole ``tests/`` tree is collected.
"""

import pytest
from kubernetes import client, config

from tests.support.kubeapi import FakeCluster
from tests.support.kubeapi.fixture import fake_cluster  # noqa: F401


@pytest.fixture
def api(fake_cluster: FakeCluster) -> client.ApiClient:  # noqa: F811
    """An official-client ApiClient built from the fake cluster's kubeconfig (no global state)."""
    return config.new_client_from_config(config_file=str(fake_cluster.kubeconfig))
