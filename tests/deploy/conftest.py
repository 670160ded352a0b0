"""The chart, loaded once for the session, and a renderer every chart test shares."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import helm_python as helm
import pytest

from tests.deploy.chart import CHART, NAMESPACE, RELEASE, Render, Rendered, merged


@pytest.fixture(scope="session")
def chart() -> Iterator[helm.Chart]:
    """The chart, loaded once."""
    with helm.Chart.load(CHART) as loaded:
        yield loaded


@pytest.fixture(scope="session")
def render(chart: helm.Chart) -> Render:
    """Render the chart as `helm install gw -n voice` would, with the given values."""

    def _render(values: Mapping[str, Any] | None = None) -> Rendered:
        files = chart.render(
            merged(values or {}), name=RELEASE, namespace=NAMESPACE, is_install=True
        )
        return Rendered(files)

    return _render
