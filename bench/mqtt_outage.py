"""MQTT under a broker outage: events lost or duplicated, count-to-arrival latency, frame loop cost.

A real Mosquitto on a free local port and a recording subscriber with a persistent QoS 1 session.
Events stream at ``--rate`` per second; the broker is stopped ``--before`` seconds in, for
``--outage`` seconds, then restarted; the run waits until every event arrived (or ``--drain``).
Then the real frame loop (detector, classifier, tracker) runs over the scene photos with and without
``[mqtt]``, alternately, and compares frames/s.

``--full-disk S`` puts the state dir on a real tmpfs (``mount``: needs root) with the count log beside
the MQTT spool, as on a gate, fills it up when the broker stops and frees it ``S`` seconds later; the
run then also checks that ``events.jsonl``, ``totals.json`` and the MQTT totals equal the events.

    python bench/mqtt_outage.py                  # 60 s outage, the issue's goal
    python bench/mqtt_outage.py --outage 5 --fps-rounds 1
    python bench/mqtt_outage.py --full-disk 65 --fps-rounds 0 --json bench/results/mqtt_outage_full_disk.json
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import DATA, bench_main, format_table, provenance, summarize
from mosquitto import Mosquitto, Recorder

from maskipy.edge.config import MqttConfig, load_edge_config
from maskipy.edge.outputs.counts import CountLog, read_events
from maskipy.edge.outputs.mqtt import MqttOutput
from maskipy.edge.tracking import CountEvent

GATE = "bench-gate"
LABELS = ("properly_masked", "improperly_masked", "unmasked")
TOPIC = f"maskipy/{GATE}/event"


class StateDisk:
    """A real tmpfs of ``mib`` MiB at ``path`` for the state dir, filled up and freed on cue."""

    def __init__(self, path: Path, mib: int) -> None:
        path.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={mib}m", "tmpfs", str(path)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"mqtt_outage: --full-disk needs a real tmpfs, and mount failed "
                             f"({done.stderr.strip()}); run it as root")
        self.path, self.filler = path, path / "filler"

    def fill(self) -> None:
        """Take every free block (a partial write, then ENOSPC, at each size)."""
        with open(self.filler, "ab", buffering=0) as handle:
            for size in (1 << 20, 4096):
                try:
                    while True:
                        handle.write(b"\0" * size)
                except OSError:
                    pass

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def close(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], check=False)


class Degraded:
    """When an output said it was degraded (first and last time seen), sampled once per event."""

    def __init__(self) -> None:
        self.first: float | None = None
        self.last: float | None = None

    def sample(self, why: str | None, now: float) -> None:
        if why is not None:
            self.first = now if self.first is None else self.first
            self.last = now

    def span(self, origin: float) -> list[float] | None:
        """[first, last] seconds after ``origin``, or None when it never was."""
        return None if self.first is None else [round(self.first - origin, 1), round(self.last - origin, 1)]


def outage_run(work: Path, *, before: float, outage: float, after: float, rate: float, drain: float,
               full_disk: float = 0.0, disk_mib: int = 16) -> dict[str, Any]:
    """Stream events across a broker outage; what arrived, how often, in which order, how fast.

    ``full_disk``: seconds the state disk (a real tmpfs, with a count log beside the spool) is full,
    from the moment the broker stops; 0 leaves the state dir on the ordinary disk, MQTT alone.
    """
    broker = Mosquitto(work / "broker")
    broker.start()
    disk = StateDisk(work / "disk", disk_mib) if full_disk else None
    state = disk.path / "state" if disk else work / "state"
    topics = (TOPIC, f"maskipy/{GATE}/totals/+") if disk else (TOPIC,)
    recorder = Recorder(broker.port, topics=topics).start()
    output = MqttOutput(MqttConfig(enabled=True, host="127.0.0.1", port=broker.port, gate=GATE),
                        state_dir=state, labels=LABELS, alert_classes=("unmasked",))
    count_log = CountLog(state, labels=LABELS) if disk else None
    call_us = frame_call_cost(output)
    sent: list[tuple[str, float, str]] = []  # id, count time, phase
    on_count_us: list[float] = []
    log_us: list[float] = []
    mqtt_degraded, log_degraded = Degraded(), Degraded()
    start = time.monotonic()
    stopped_at = restarted_at = filled_at = freed_at = None
    number = 0
    try:
        while (elapsed := time.monotonic() - start) < before + outage + after:
            if stopped_at is None and elapsed >= before:
                broker.stop()
                stopped_at = time.time()
                if disk:
                    disk.fill()
                    filled_at = time.time()
            if restarted_at is None and elapsed >= before + outage:
                broker.start()
                restarted_at = time.time()
            if disk and freed_at is None and elapsed >= before + full_disk:
                disk.free()
                freed_at = time.time()
            phase = "before" if stopped_at is None else "outage" if restarted_at is None else "after"
            event = CountEvent(time.time(), number, LABELS[number % 3], 0.9, (0, 0, 10, 10))
            called = time.perf_counter()
            output.on_count(event)
            on_count_us.append(1e6 * (time.perf_counter() - called))
            if count_log:
                called = time.perf_counter()
                count_log.on_count(event)
                log_us.append(1e6 * (time.perf_counter() - called))
                log_degraded.sample(count_log.degraded, time.time())
            mqtt_degraded.sample(output.degraded, time.time())
            sent.append((event.id, event.time, phase))
            number += 1
            time.sleep(max(0.0, start + number / rate - time.monotonic()))
        if disk and freed_at is None:  # the disk is freed by the end of the run at the latest
            disk.free()
            freed_at = time.time()
        recorder.wait_for(TOPIC, len(sent), timeout=drain)
        # Back on disk and nothing left to send, then a second in which a late duplicate would arrive.
        deadline = time.monotonic() + drain
        while (output.degraded or output.queued) and time.monotonic() < deadline:
            mqtt_degraded.sample(output.degraded, time.time())
            time.sleep(0.1)
        time.sleep(1.0)
        output.close()
        if count_log:
            count_log.close()
        received = recorder.on(TOPIC)
        result = tally(sent, received, restarted_at or time.time())
        result["on_frame_us"] = call_us
        result["on_count_us"] = summarize(on_count_us)
        if disk and stopped_at is not None:
            result["full_disk"] = disk_report(state, sent, recorder, stopped_at, filled_at, freed_at,
                                              mqtt_degraded, log_degraded, output.degraded)
            result["full_disk"]["count_log_on_count_us"] = summarize(log_us)
    finally:
        recorder.stop()
        broker.stop()
        if disk:
            disk.close()
    return result


def disk_report(state: Path, sent: list[tuple[str, float, str]], recorder: Recorder, stopped_at: float,
                filled_at: float | None, freed_at: float | None, mqtt_degraded: Degraded,
                log_degraded: Degraded, mqtt_still: str | None) -> dict[str, Any]:
    """What the full disk did: when MQTT and the count log were degraded, and whether what the count
    log saved and the MQTT totals equal the events once the disk had room again."""
    from collections import Counter

    expected = Counter(LABELS[number % 3] for number in range(len(sent)))
    ids = [ident for ident, _, _ in sent]
    logged = [event.get("id") for event in read_events([state / "events.jsonl"])]
    try:
        days = json.loads((state / "totals.json").read_text())["days"]
        saved = sum(map(Counter, days.values()), Counter())
    except (OSError, ValueError, KeyError):
        saved = Counter()
    mqtt_totals = {label: int(found[-1].payload) if (found := recorder.on(f"maskipy/{GATE}/totals/{label}"))
                   else None for label in LABELS}
    return {
        "filled_s": round(filled_at - stopped_at, 2) if filled_at else None,
        "freed_s": round(freed_at - stopped_at, 1) if freed_at else None,
        "mqtt_degraded_s": mqtt_degraded.span(stopped_at),
        "count_log_degraded_s": log_degraded.span(stopped_at),
        "mqtt_degraded_at_end": mqtt_still,
        "events_logged": len(logged), "logged_lost": len(set(ids) - set(logged)),
        "logged_duplicates": len(logged) - len(set(logged)), "logged_in_order": logged == ids,
        "totals_json": dict(saved), "mqtt_totals": mqtt_totals, "events_per_class": dict(expected),
        "totals_json_equal_events": saved == expected,
        "mqtt_totals_equal_events": mqtt_totals == dict(expected),
    }


def frame_call_cost(output: MqttOutput, calls: int = 2000) -> dict[str, float | int]:
    """Microseconds per on_frame call with two tracks at the gate (what the frame loop pays)."""
    from collections import deque

    from maskipy.edge.tracking import Track

    tracks = [Track(1, (0, 0, 10, 10), 0.0, 0.0, deque(), label="unmasked"),
              Track(2, (20, 0, 30, 10), 0.0, 0.0, deque(), label="properly_masked")]
    samples = []
    for index in range(calls):
        called = time.perf_counter()
        output.on_frame(tracks if index % 50 < 25 else [], None)  # type: ignore[arg-type]
        samples.append(1e6 * (time.perf_counter() - called))
    return summarize(samples)


def tally(sent: list[tuple[str, float, str]], received: list[Any], restarted_at: float) -> dict[str, Any]:
    ids = [json.loads(m.payload)["id"] for m in received]
    seen: set[str] = set()
    # A repeat the broker marked as a redelivery (its QoS 1 resend to this subscriber, whose
    # acknowledgement it had not read when it stopped) against one the gate published twice.
    redelivered = 0
    for message, ident in zip(received, ids, strict=True):
        redelivered += ident in seen and message.dup
        seen.add(ident)
    arrival = {}
    for message, ident in zip(received, ids, strict=True):
        arrival.setdefault(ident, message.at)
    # Events counted after the broker came back but before the gate reconnected wait like outage ones.
    reconnected = min((arrival[i] for i, _, p in sent if p != "before" and i in arrival),
                      default=restarted_at)
    sent = [(i, t, "reconnecting" if p == "after" and t < reconnected else p) for i, t, p in sent]
    sent_ids = [ident for ident, _, _ in sent]
    first_seen = list(dict.fromkeys(ids))
    latency = {phase: [1000.0 * (arrival[i] - t) for i, t, p in sent if p == phase and i in arrival]
               for phase in ("before", "outage", "reconnecting", "after")}
    outage_ids = [i for i, _, p in sent if p == "outage" and i in arrival]
    return {
        "sent": len(sent), "received": len(ids), "lost": len(set(sent_ids) - set(ids)),
        "duplicates": len(ids) - len(set(ids)), "duplicates_redelivered_by_broker": redelivered,
        "in_order": first_seen == [i for i in sent_ids if i in arrival],
        "sent_during_outage": sum(p == "outage" for _, _, p in sent),
        "latency_ms": {phase: summarize(values) for phase, values in latency.items()},
        "max_latency_ms_connected": round(max(latency["before"] + latency["after"], default=0.0), 1),
        "reconnected_after_restart_s": round(reconnected - restarted_at, 2),
        "outage_backlog_delivered_s": round(max((arrival[i] for i in outage_ids), default=restarted_at)
                                            - restarted_at, 2),
    }


def frame_loop_fps(work: Path, *, frames: int, rounds: int) -> dict[str, Any]:
    """The real frame loop over the scene photos, with and without [mqtt], alternately."""
    from maskipy.edge.runtime import EdgeRuntime

    broker = Mosquitto(work / "fps-broker")
    broker.start()
    fps: dict[str, list[float]] = {"off": [], "on": []}
    cpu_ms: dict[str, list[float]] = {"off": [], "on": []}
    counted: list[int] = []
    model_dir: Path | None = None
    try:
        for index in range(rounds):
            for mode in ("off", "on"):
                ini = work / f"{mode}.ini"
                ini.write_text(f"[camera]\nsource = {DATA / 'scenes'}\nloop = yes\n"
                               f"[outputs]\ndevices = null\n"
                               f"[counts]\nstate_dir = {work / f'state-{mode}-{index}'}\n"
                               f"[mqtt]\nenabled = {'yes' if mode == 'on' else 'no'}\nhost = 127.0.0.1\n"
                               f"port = {broker.port}\ngate = {GATE}\n")
                runtime = EdgeRuntime(load_edge_config(ini))
                model_dir = runtime.bundle.directory
                cpu = time.process_time()
                counted.append(sum(runtime.run(max_frames=frames).values()))
                # CPU time of every thread of this process (the MQTT sender and paho's included): other
                # programs on the machine change wall-clock frames/s far more than they change this.
                cpu_ms[mode].append(1000.0 * (time.process_time() - cpu) / frames)
                # Time inside the loop's stages (MQTT's on_frame/on_count are in track_outputs), so
                # start-up and close (which waits briefly for PUBACKs) are not counted.
                timing = runtime.timer.as_dict()
                fps[mode].append(timing["frames"] / sum(timing["seconds"].values()))
    finally:
        broker.stop()
    off, on = (statistics.median(fps[m]) if fps[m] else 0.0 for m in ("off", "on"))
    cpu_off, cpu_on = (statistics.median(cpu_ms[m]) if cpu_ms[m] else 0.0 for m in ("off", "on"))
    return {"frames_per_run": frames, "rounds": rounds, "fps_off": [round(v, 2) for v in fps["off"]],
            "fps_on": [round(v, 2) for v in fps["on"]], "median_fps_off": round(off, 2),
            "median_fps_on": round(on, 2), "change_pct": round(100.0 * (on - off) / off, 1) if off else None,
            "people_counted_per_run": counted,
            "cpu_ms_per_frame_off": [round(v, 1) for v in cpu_ms["off"]],
            "cpu_ms_per_frame_on": [round(v, 1) for v in cpu_ms["on"]],
            "median_cpu_ms_per_frame_off": round(cpu_off, 2), "median_cpu_ms_per_frame_on": round(cpu_on, 2),
            "cpu_change_pct": round(100.0 * (cpu_on - cpu_off) / cpu_off, 1) if cpu_off else None,
            "model_dir": model_dir}


def run_benchmark(*, before: float, outage: float, after: float, rate: float, drain: float,
                  fps_frames: int, fps_rounds: int, full_disk: float = 0.0,
                  disk_mib: int = 16) -> dict[str, Any]:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from maskipy.edge.bundle import DEFAULT_BUNDLE

    settings = {"before_s": before, "outage_s": outage, "after_s": after, "events_per_s": rate}
    if full_disk:
        settings |= {"full_disk_s": full_disk, "disk_mib": disk_mib}
    # The commit is taken before the minutes of measuring; the model once the frame loop loaded it.
    record = provenance()
    with tempfile.TemporaryDirectory(prefix="maskipy-mqtt-bench-") as tmp:
        work = Path(tmp)
        result: dict[str, Any] = {"settings": settings}
        result["outage"] = outage_run(work, before=before, outage=outage, after=after, rate=rate, drain=drain,
                                      full_disk=full_disk, disk_mib=disk_mib)
        if fps_rounds and fps_frames:
            result["frame_loop"] = frame_loop_fps(work, frames=fps_frames, rounds=fps_rounds)
            loaded = provenance(result["frame_loop"].pop("model_dir"), "the runtime's (default config)")
        else:
            # No frame loop, no model loaded: the default bundle is named for the record, and says so.
            loaded = provenance(DEFAULT_BUNDLE, "not loaded (--fps-rounds 0); the default, for the record")
    record["models"] = loaded["models"]
    result["provenance"] = record
    # tests/test_mqtt.py reads these two top-level keys (older files have only them); they repeat
    # the provenance.
    result["commit"] = record["commit"]
    result["model_sha256"] = record["models"]["classifier"]["sha256"]
    return result


def print_report(result: dict[str, Any]) -> None:
    o = result["outage"]
    print(f"commit {result['provenance']['commit']}; {result['settings']['outage_s']:.0f} s broker outage")
    print(format_table(["sent", "received", "lost", "duplicates", "in order", "backlog sent after (s)"],
                       [[o["sent"], o["received"], o["lost"], o["duplicates"], o["in_order"],
                         o["outage_backlog_delivered_s"]]]))
    rows = [[phase, s["n"], s["median"], s["p90"]] for phase, s in o["latency_ms"].items()]
    print(format_table(["count -> arrival (ms)", "n", "median", "p90"], rows))
    print(f"gate reconnected {o['reconnected_after_restart_s']} s after the broker restart; "
          f"on_frame {o['on_frame_us']['median']} us, on_count {o['on_count_us']['median']} us (median)")
    if "full_disk" in o:
        d = o["full_disk"]
        print(f"state disk full from the broker stop (+{d['filled_s']} s) to +{d['freed_s']} s; MQTT "
              f"degraded {d['mqtt_degraded_s']} s, count log {d['count_log_degraded_s']} s after the stop")
        row = [d[key] for key in ("events_logged", "logged_lost", "logged_duplicates", "logged_in_order",
                                  "totals_json_equal_events", "mqtt_totals_equal_events")]
        print(format_table(["count log: logged", "lost", "duplicates", "in order", "totals.json = events",
                            "MQTT totals = events"], [row]))
    if "frame_loop" in result:
        f = result["frame_loop"]
        print(f"frame loop: {f['median_fps_off']} fps without MQTT, {f['median_fps_on']} with "
              f"({f['change_pct']}%, wall clock); CPU per frame {f['median_cpu_ms_per_frame_off']} ms "
              f"without, {f['median_cpu_ms_per_frame_on']} ms with ({f['cpu_change_pct']}%)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--before", type=float, default=10.0, help="seconds of events before the outage")
    parser.add_argument("--outage", type=float, default=60.0, help="seconds the broker is down")
    parser.add_argument("--after", type=float, default=10.0, help="seconds of events after it is back")
    parser.add_argument("--rate", type=float, default=5.0, help="counted people per second")
    parser.add_argument("--drain", type=float, default=60.0, help="wait this long for the backlog")
    parser.add_argument("--fps-frames", type=int, default=40, help="frames per frame-loop run")
    parser.add_argument("--fps-rounds", type=int, default=5, help="off/on pairs of frame-loop runs (0: skip)")
    parser.add_argument("--full-disk", type=float, default=0.0, metavar="S",
                        help="state dir on a real tmpfs (needs root), full from the broker stop for S "
                             "seconds (0: off)")
    parser.add_argument("--disk-mib", type=int, default=16, help="size of that tmpfs")


def exit_code(result: dict[str, Any]) -> int:
    """0 when every event arrived once and in order (and, with a full disk, was logged once and totalled)."""
    o = result["outage"]
    ok = o["lost"] == 0 and o["duplicates"] == 0 and o["in_order"]
    if "full_disk" in o:
        d = o["full_disk"]
        ok = ok and d["logged_in_order"] and d["totals_json_equal_events"] and d["mqtt_totals_equal_events"]
    return 0 if ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    return bench_main(__file__, __doc__, add_arguments, lambda a: run_benchmark(
        before=a.before, outage=a.outage, after=a.after, rate=a.rate, drain=a.drain,
        fps_frames=a.fps_frames, fps_rounds=a.fps_rounds, full_disk=a.full_disk, disk_mib=a.disk_mib),
        print_report, argv, exit_code)


if __name__ == "__main__":
    sys.exit(main())
