"""The gate's Prometheus metrics, read from its GateStatus at scrape time, in a private registry."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from .status import GateStatus


class StatusCollector:
    """Turns one ``GateStatus.snapshot()`` into metric families on each scrape (nothing runs per frame).

    ``peers`` are the gate's other outputs: the MQTT one's ``dropped`` (events its full on-disk
    queue dropped) and ``queued`` (not yet acknowledged) are read from it here, so the MQTT output
    needs no reference to the metrics. ``systemd/prometheus/maskipy-alerts.yml`` alerts on them.
    """

    def __init__(self, status: GateStatus, peers: Sequence[Any] = ()) -> None:
        self.status, self.peers = status, tuple(peers)

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
            InfoMetricFamily,
        )

        snap = self.status.snapshot()
        counted = CounterMetricFamily("maskipy_people_counted", "People counted since the gate started, "
                                      "per class", labels=["class"])
        today = GaugeMetricFamily("maskipy_people_today", "People counted today (local time), per class",
                                  labels=["class"])
        for label in snap["labels"]:
            counted.add_metric([label], snap["session_counts"].get(label, 0))
            today.add_metric([label], snap["today"].get(label, 0))
        yield from (counted, today)
        frames, camera, model = snap["frames"], snap["camera"], snap["model"]
        yield CounterMetricFamily("maskipy_frames", "Frames through the frame loop", value=frames["total"])
        yield CounterMetricFamily("maskipy_inferred_frames", "Frames the detector ran on",
                                  value=frames["inferred"])
        yield CounterMetricFamily("maskipy_faces", "Face boxes classified", value=frames["faces"])
        yield GaugeMetricFamily("maskipy_frames_per_second", "Frame loop rate over the last window",
                                value=frames["fps"])
        stages = HistogramMetricFamily("maskipy_stage_seconds", "Seconds per frame spent in each stage "
                                       "(a stage skipped on a frame is not sampled)", labels=["stage"])
        for stage, (buckets, total) in self.status.stage_histograms().items():
            stages.add_metric([stage], buckets, sum_value=total)
        yield stages
        yield CounterMetricFamily("maskipy_camera_reopens", "Times the watchdog reopened the camera",
                                  value=camera["reopens_total"])
        if camera["last_frame_age_s"] is not None:
            yield GaugeMetricFamily("maskipy_camera_last_frame_age_seconds", "Seconds since the last frame",
                                    value=camera["last_frame_age_s"])
        yield GaugeMetricFamily("maskipy_healthy", "1 while frames arrive and the camera was not reopened "
                                "within a minute", value=1 if snap["health"] == "ok" else 0)
        if model:
            yield CounterMetricFamily("maskipy_model_reloads", "Successful model reloads (SIGHUP)",
                                      value=model["reloads"])
            yield CounterMetricFamily("maskipy_model_reload_failures", "Reloads that kept the old model",
                                      value=model["reload_failures"])
            info = InfoMetricFamily("maskipy_model", "The model bundle in use")
            info.add_metric([], {"sha256": model["sha256"], "created_at": str(model["created_at"] or "")})
            yield info
        degraded = GaugeMetricFamily("maskipy_output_degraded", "1 while an output (the count log, MQTT) "
                                     "is degraded; /status.json says why", labels=["output"])
        for name, state in snap["outputs"].items():
            degraded.add_metric([name], 1 if state["state"] == "degraded" else 0)
        yield degraded
        for peer in self.peers:
            if peer.name == "mqtt" and hasattr(peer, "dropped"):
                yield CounterMetricFamily("maskipy_mqtt_dropped_events", "MQTT events dropped because "
                                          "the on-disk queue was full", value=peer.dropped)
            if peer.name == "mqtt" and hasattr(peer, "queued"):
                yield GaugeMetricFamily("maskipy_mqtt_queued_events", "Counted people not yet acknowledged "
                                        "by the MQTT broker", value=peer.queued)


class GateMetrics:
    """A private CollectorRegistry (tests build several; nothing global) with the gate's metrics.

    Everything is read at scrape time from the status and the peer outputs; process metrics (RSS,
    CPU) come from prometheus-client's ProcessCollector::

        metrics = GateMetrics(status, peers=outputs)
        body, content_type = metrics.render()
    """

    def __init__(self, status: GateStatus, peers: Sequence[Any] = ()) -> None:
        from prometheus_client import CollectorRegistry, ProcessCollector

        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.registry.register(StatusCollector(status, peers))

    def render(self) -> tuple[bytes, str]:
        """The /metrics body in Prometheus text format and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
