"""The per-request metrics as plain numbers, turned into Prometheus samples at scrape time.

Without a lock: only the event loop's thread records. See docs/performance.md, "Request
metrics as plain numbers".
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.samples import Exemplar
from prometheus_client.utils import floatToGoString

Labels = tuple[str | int, ...]
"""Label values; numbers (an HTTP status) are written as text only at scrape time."""


class _Series:
    """One label set: a count per bucket (the last one +Inf) and the sum; with traces on,
    the latest sampled request's trace per bucket (an exemplar)."""

    __slots__ = ("buckets", "exemplars", "total")

    def __init__(self, size: int) -> None:
        self.buckets = [0] * size
        self.total = 0.0
        self.exemplars: list[Exemplar | None] | None = None


class CountedHistogram(Collector):
    """A counter `<name>` and a histogram `<histogram_name>` fed by one `observe`."""

    def __init__(
        self,
        name: str,
        documentation: str,
        histogram_name: str,
        histogram_documentation: str,
        labelnames: Sequence[str],
        buckets: Sequence[float],
    ) -> None:
        self._name = name
        self._documentation = documentation
        self._histogram_name = histogram_name
        self._histogram_documentation = histogram_documentation
        self._labelnames = list(labelnames)
        self._bounds = [float(b) for b in buckets]
        self._les = [floatToGoString(b) for b in self._bounds] + ["+Inf"]  # type: ignore[no-untyped-call]
        self._series: dict[Labels, _Series] = {}

    def observe(self, labels: Labels, value: float, trace: tuple[str, str] | None = None) -> None:
        """Count one event with these label values, lasting `value` seconds; `trace` (trace
        and span ids of a sampled request) becomes its bucket's exemplar."""
        series = self._series.get(labels)
        if series is None:
            series = self._series[labels] = _Series(len(self._les))
        bucket = bisect_left(self._bounds, value)
        series.buckets[bucket] += 1
        series.total += value
        if trace is not None:
            if series.exemplars is None:
                series.exemplars = [None] * len(self._les)
            series.exemplars[bucket] = Exemplar(
                {"trace_id": trace[0], "span_id": trace[1]}, value, time.time()
            )

    def collect(self) -> Iterator[CounterMetricFamily | HistogramMetricFamily]:
        """The two families, as a scrape sees them."""
        counter = CounterMetricFamily(self._name, self._documentation, labels=self._labelnames)
        histogram = HistogramMetricFamily(
            self._histogram_name, self._histogram_documentation, labels=self._labelnames
        )
        for labels, series in list(self._series.items()):
            counts = list(series.buckets)
            exemplars = series.exemplars or [None] * len(counts)
            cumulative: list[tuple[str, float] | tuple[str, float, Exemplar]] = []
            running = 0
            for le, count, exemplar in zip(self._les, counts, exemplars, strict=True):
                running += count
                if exemplar is None:
                    cumulative.append((le, float(running)))
                else:
                    cumulative.append((le, float(running), exemplar))
            counter.add_metric([str(value) for value in labels], float(running))
            histogram.add_metric([str(value) for value in labels], cumulative, series.total)
        yield counter
        yield histogram

    def describe(self) -> Iterator[CounterMetricFamily | HistogramMetricFamily]:
        """The families with no samples (what the registry checks names against)."""
        yield CounterMetricFamily(self._name, self._documentation, labels=self._labelnames)
        yield HistogramMetricFamily(
            self._histogram_name, self._histogram_documentation, labels=self._labelnames
        )


class CountedLabels(Collector):
    """A counter `<name>` by label values, kept as plain numbers (see `CountedHistogram`)."""

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], known: Sequence[Labels]
    ) -> None:
        self._name = name
        self._documentation = documentation
        self._labelnames = list(labelnames)
        self.counts: dict[Labels, int] = dict.fromkeys(known, 0)

    def inc(self, labels: Labels) -> None:
        """Count one event with these label values."""
        self.counts[labels] = self.counts.get(labels, 0) + 1

    def collect(self) -> Iterator[CounterMetricFamily]:
        """The family, as a scrape sees it."""
        family = CounterMetricFamily(self._name, self._documentation, labels=self._labelnames)
        for labels, count in list(self.counts.items()):
            family.add_metric([str(value) for value in labels], float(count))
        yield family

    def describe(self) -> Iterator[CounterMetricFamily]:
        """The family with no samples."""
        yield CounterMetricFamily(self._name, self._documentation, labels=self._labelnames)
