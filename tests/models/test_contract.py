"""Every installed model passes the contract (`mktlab.testing.contract`): a new model is tested for free."""

import pytest

from mktlab.models import registry
from mktlab.testing.contract import *  # noqa: F401,F403  (the contract's tests and fixtures)


@pytest.fixture(scope="module", params=registry.names())
def model_name(request: pytest.FixtureRequest) -> str:
    return request.param
