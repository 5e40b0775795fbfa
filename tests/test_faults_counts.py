"""An operator's worst week, counts: kills, full and read-only disks, two gates, bad totals, clock steps.

A full disk is a real 64 KiB tmpfs (``mount -t tmpfs -o size=64k``, the ``tmpfs`` fixture in
conftest) and a read-only one the same tmpfs remounted ``ro``; where the sandbox cannot mount (no
CAP_SYS_ADMIN), the full disk is ``/dev/full`` (every write: ENOSPC) and the read-only tests skip.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import wait_for
from faults_helpers import gate_command

from maskipy.edge.outputs.counts import CountLog, append_line
from maskipy.edge.service.statelock import StateLock
from maskipy.edge.tracking import CountEvent

LABELS = ("properly_masked", "improperly_masked", "unmasked")
NOON = time.mktime((2026, 3, 14, 12, 0, 0, 0, 0, -1))
DAY = 86400.0


class Clock:
    def __init__(self, now: float = NOON) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def event(label: str, when: float = NOON) -> CountEvent:
    return CountEvent(when, 1, label, 0.9, (0, 0, 10, 10))


def lines(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    assert not text or text.endswith("\n"), "a partial line was left in the event log"
    return [json.loads(line) for line in text.splitlines()]


def test_a_count_logged_but_not_yet_totalled_is_added_back_at_start(tmp_path):
    log = CountLog(tmp_path, labels=LABELS, clock=Clock())
    log.on_count(event("unmasked"))
    # A kill between the event line and the totals: the line is there, the totals are not.
    append_line(tmp_path / "events.jsonl", json.dumps(event("properly_masked").to_dict()) + "\n")
    restarted = CountLog(tmp_path, labels=LABELS, clock=Clock())
    assert restarted.totals == {"properly_masked": 1, "improperly_masked": 0, "unmasked": 1}
    assert json.loads((tmp_path / "totals.json").read_text())["totals"]["properly_masked"] == 1


def test_a_half_written_last_line_is_cut_at_start(tmp_path):
    log = CountLog(tmp_path, labels=LABELS, clock=Clock())
    log.on_count(event("unmasked"))
    with open(tmp_path / "events.jsonl", "a") as handle:
        handle.write('{"id": "cut-off", "label": "unm')  # a power cut mid-write
    restarted = CountLog(tmp_path, labels=LABELS, clock=Clock())
    restarted.on_count(event("unmasked"))
    assert [e["label"] for e in lines(tmp_path / "events.jsonl")] == ["unmasked", "unmasked"]
    assert restarted.totals["unmasked"] == 2


def test_full_disk_keeps_counting_in_memory_and_catches_up(tmp_path, tmpfs, caplog):
    if tmpfs is None:  # no mount here: every write to /dev/full fails with ENOSPC
        state = tmp_path / "state"
        state.mkdir()
        (state / "events.jsonl").symlink_to("/dev/full")
    else:
        state = tmpfs.path / "state"
    clock = Clock()
    log = CountLog(state, labels=LABELS, clock=clock, flush_seconds=30)
    log.on_count(event("unmasked"))
    if tmpfs is None:
        assert log.degraded and "No space" in log.degraded
        return
    tmpfs.fill()
    for _ in range(3):
        log.on_count(event("properly_masked"))  # ENOSPC must not end the frame loop
    assert log.degraded and "No space" in log.degraded
    assert caplog.text.count("cannot save counts") == 1  # said once, not per count
    assert log.totals == {"properly_masked": 3, "improperly_masked": 0, "unmasked": 1}
    assert not list(state.glob("*.tmp"))
    assert len(lines(state / "events.jsonl")) <= 4  # whole lines only (a page's slack may hold some)
    tmpfs.free()
    clock.now += 31
    log.on_frame([], None)  # the periodic retry
    assert log.degraded is None and "saved again" in caplog.text
    assert sorted(e["label"] for e in lines(state / "events.jsonl")) == ["properly_masked"] * 3 + ["unmasked"]
    assert CountLog(state, labels=LABELS, clock=clock).totals["properly_masked"] == 3


def test_read_only_state_dir_keeps_counting_and_saves_after_remount(tmpfs):
    if tmpfs is None:
        pytest.skip("cannot mount a tmpfs here (needs CAP_SYS_ADMIN)")
    state = tmpfs.path / "state"
    clock = Clock()
    log = CountLog(state, labels=LABELS, clock=clock)
    log.on_count(event("unmasked"))
    tmpfs.readonly(True)
    try:
        log.on_count(event("unmasked"))
        assert log.degraded and "Read-only" in log.degraded
    finally:
        tmpfs.readonly(False)
    log.on_count(event("unmasked"))  # the next count retries and writes everything
    assert log.degraded is None
    assert len(lines(state / "events.jsonl")) == 3
    assert CountLog(state, labels=LABELS, clock=clock).totals["unmasked"] == 3


@pytest.mark.parametrize("saved", ["[]", "null", '"text"',
                                   '{"date": "2026-03-14", "totals": {"unmasked": "3"}}',
                                   '{"days": {"2026-03-14": {"unmasked": -1}}}', '{"days": []}'])
def test_wrong_shaped_totals_are_rebuilt_from_the_event_log(tmp_path, caplog, saved):
    log = CountLog(tmp_path, labels=LABELS, clock=Clock())
    log.on_count(event("unmasked"))
    log.on_count(event("unmasked"))
    (tmp_path / "totals.json").write_text(saved)
    restarted = CountLog(tmp_path, labels=LABELS, clock=Clock())
    assert restarted.totals["unmasked"] == 2
    assert "rebuilding them from the event log" in caplog.text


def test_totals_json_that_is_a_directory_is_reported_not_silently_unsaved(tmp_path, caplog):
    (tmp_path / "totals.json").mkdir()
    log = CountLog(tmp_path, labels=LABELS, clock=Clock())
    log.on_count(event("unmasked"))
    assert log.degraded is not None and "is a directory" in caplog.text
    assert len(lines(tmp_path / "events.jsonl")) == 1  # the event itself is still saved


def test_clock_stepping_back_over_midnight_keeps_both_days(tmp_path):
    clock = Clock(NOON + DAY)
    log = CountLog(tmp_path, labels=LABELS, clock=clock)
    log.on_count(event("unmasked", when=clock.now))
    clock.now = NOON  # NTP steps the clock back a day (or the Pi booted before NTP sync)
    log.on_count(event("properly_masked", when=clock.now))
    clock.now = NOON + DAY
    log.on_count(event("unmasked", when=clock.now))
    restarted = CountLog(tmp_path, labels=LABELS, clock=clock)
    assert restarted.days["2026-03-15"]["unmasked"] == 2
    assert restarted.days["2026-03-14"]["properly_masked"] == 1


def test_yesterdays_totals_are_kept_after_midnight(tmp_path):
    clock = Clock()
    log = CountLog(tmp_path, labels=LABELS, clock=clock)
    log.on_count(event("unmasked"))
    clock.now += DAY
    log.on_count(event("properly_masked", when=clock.now))
    log.close()
    saved = json.loads((tmp_path / "totals.json").read_text())
    assert saved["days"]["2026-03-14"]["unmasked"] == 1
    assert saved["days"]["2026-03-15"]["properly_masked"] == 1
    assert saved["date"] == "2026-03-15" and saved["totals"]["unmasked"] == 0


def test_a_second_gate_on_one_state_dir_is_refused(tmp_path):
    with StateLock(tmp_path), pytest.raises(Exception, match="another maskipy-edge run"):
        StateLock(tmp_path).acquire()
    StateLock(tmp_path).acquire().release()  # free again once the first one let go


def test_sigkill_mid_run_loses_no_count_and_a_second_gate_is_refused(tmp_path, scenes_dir, default_bundle):
    config = tmp_path / "config.ini"
    config.write_text("[camera]\nloop = yes\n[counts]\nflush_seconds = 3600\n")
    state = tmp_path / "state"
    gate = subprocess.Popen(gate_command(state, scenes_dir, default_bundle, "--config", str(config)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert wait_for(lambda: len(lines(state / "events.jsonl")) >= 8, 60), "the gate counted nobody"
        second = subprocess.run(gate_command(state, scenes_dir, default_bundle, "--max-frames", "1"),
                                capture_output=True, text=True, timeout=120)
        assert second.returncode == 1
        assert "another maskipy-edge run" in second.stderr and "Traceback" not in second.stderr
    finally:
        gate.send_signal(signal.SIGKILL)
        gate.wait(30)
    logged = lines(state / "events.jsonl")
    restarted = CountLog(state, labels=LABELS)
    by_label = {label: sum(e["label"] == label for e in logged) for label in LABELS}
    assert sum(restarted.totals.values()) == len(logged) >= 8
    assert restarted.totals == by_label
    os.sync()
