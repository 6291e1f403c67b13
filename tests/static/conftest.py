"""Fixtures of the static checks."""

from typing import cast

import pytest

from tests.static.manifests import BUILDS


@pytest.fixture(scope="module", params=sorted(BUILDS))
def build(request: pytest.FixtureRequest) -> str:
    """Each of the builds of deploy/k8s in turn: the base and every overlay."""
    return cast(str, request.param)
