"""Prometheus metrics of the server, `facelens_` prefix, in a registry of its own."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from ..engine import Engine
from ..types import FrameResult

if TYPE_CHECKING:
    from .hub import Hub, LiveSource

LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


class Metrics:
    """Counters read from the sources at scrape time, histograms observed as things happen."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.hub: Hub | None = None
        self.frame_latency = Histogram(
            "facelens_frame_latency_seconds",
            "Seconds from a frame leaving its source to its result.",
            ["source"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.analyze_latency = Histogram(
            "facelens_analyze_seconds",
            "Seconds to answer POST /v1/analyze (decode, detect, attributes), successful requests.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.analyze_requests = Counter(
            "facelens_analyze_requests", "POST /v1/analyze requests by HTTP status.", ["status"], registry=self.registry
        )
        self.viewers = Gauge("facelens_viewers", "Open live views (MJPEG connections).", registry=self.registry)
        self.registry.register(_SourceCollector(self))

    def frame(self, source: LiveSource, result: FrameResult, engine: Engine | None) -> None:
        if engine is not None and engine.stats.latencies:
            self.frame_latency.labels(source.name).observe(engine.stats.latencies[-1])

    def text(self) -> bytes:
        return generate_latest(self.registry)


class _SourceCollector(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        hub = self.metrics.hub
        if hub is None:
            return
        with hub.lock:
            sources = [source.describe() for source in hub.sources.values()]
        counters = {
            "frames": "Frames analyzed.",
            "faces": "Faces found.",
            "dropped": "Frames of live sources dropped for a newer one.",
            "errors": "Frames whose inference failed or timed out.",
        }
        for name, text in counters.items():
            family = CounterMetricFamily(f"facelens_{name}", text, labels=["source"])
            for source in sources:
                family.add_metric([source["name"]], source[name])
            yield family
        up = GaugeMetricFamily("facelens_source_up", "1 while a source delivers frames, 0 when opening, reconnecting, failed or ended.", labels=["source", "state"])
        fps = GaugeMetricFamily("facelens_source_fps", "Frames per second of a source, over its last frames.", labels=["source"])
        people = GaugeMetricFamily("facelens_people_in_view", "People in view of a source now (left out where k-anonymity hides it).", labels=["source"])
        for source in sources:
            up.add_metric([source["name"], source["state"]], 1.0 if source["state"] == "running" else 0.0)
            fps.add_metric([source["name"]], source["fps"])
            if source["people_in_view"] is not None:
                people.add_metric([source["name"]], source["people_in_view"])
        yield up
        yield fps
        yield people
