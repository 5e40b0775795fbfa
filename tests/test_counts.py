"""The count log: events as JSON lines, totals flushed and restored across restarts, rotation by size."""

from __future__ import annotations

import itertools
import json
import time

from maskipy.edge.outputs.counts import CountLog, rotate
from maskipy.edge.tracking import CountEvent

LABELS = ("properly_masked", "improperly_masked", "unmasked")
NOON = time.mktime((2026, 3, 14, 12, 0, 0, 0, 0, -1))


class Clock:
    def __init__(self, now: float = NOON) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


_SERIAL = itertools.count()


def event(label: str, track_id: int = 1, when: float = NOON) -> CountEvent:
    return CountEvent(when, track_id, label, 0.875, (10, 20, 30, 40), id=f"event-{next(_SERIAL)}")


def test_each_counted_person_is_one_json_line(tmp_path):
    log = CountLog(tmp_path, labels=LABELS, clock=Clock())
    log.on_count(event("unmasked", 1))
    log.on_count(event("properly_masked", 2))
    log.close()
    lines = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert lines[0] == {"id": lines[0]["id"], "time": NOON, "track": 1, "label": "unmasked",
                        "confidence": 0.875, "box": [10, 20, 30, 40]}
    assert lines[0]["id"] != lines[1]["id"]
    assert [line["label"] for line in lines] == ["unmasked", "properly_masked"]
    totals = json.loads((tmp_path / "totals.json").read_text())
    assert totals["date"] == "2026-03-14"
    assert totals["totals"] == {"properly_masked": 1, "improperly_masked": 0, "unmasked": 1}


def test_totals_are_saved_with_each_count(tmp_path):
    log = CountLog(tmp_path, labels=LABELS, flush_seconds=30, clock=Clock())
    log.on_count(event("unmasked"))
    assert json.loads((tmp_path / "totals.json").read_text())["totals"]["unmasked"] == 1


def test_todays_totals_survive_a_restart_but_not_a_new_day(tmp_path):
    clock = Clock()
    first = CountLog(tmp_path, labels=LABELS, clock=clock)
    first.on_count(event("unmasked"))
    first.on_count(event("unmasked"))
    first.close()
    clock.now += 3600
    second = CountLog(tmp_path, labels=LABELS, clock=clock)
    assert second.totals["unmasked"] == 2
    second.on_count(event("improperly_masked"))
    second.close()
    clock.now += 86400
    tomorrow = CountLog(tmp_path, labels=LABELS, clock=clock)
    assert tomorrow.totals == dict.fromkeys(LABELS, 0)


def test_the_day_rolls_over_while_running(tmp_path):
    clock = Clock()
    log = CountLog(tmp_path, labels=LABELS, clock=clock)
    log.on_count(event("unmasked"))
    clock.now += 86400
    log.on_count(event("properly_masked", when=clock.now))
    assert log.totals == {"properly_masked": 1, "improperly_masked": 0, "unmasked": 0}
    assert log.days["2026-03-14"] == {"properly_masked": 0, "improperly_masked": 0, "unmasked": 1}
    log.close()


def test_event_log_rotates_by_size_keeping_keep_files(tmp_path):
    log = CountLog(tmp_path, labels=LABELS, rotate_bytes=300, keep_files=2, clock=Clock())
    for i in range(40):
        log.on_count(event("unmasked", i))
    assert log.totals["unmasked"] == 40
    log.close()
    names = sorted(p.name for p in tmp_path.glob("events.jsonl*"))
    assert names == ["events.jsonl", "events.jsonl.1", "events.jsonl.2"]
    assert all(p.stat().st_size < 300 + 120 for p in tmp_path.glob("events.jsonl*"))
    newest = json.loads((tmp_path / "events.jsonl").read_text().splitlines()[-1])
    assert newest["track"] == 39


def test_rotate_shifts_older_logs(tmp_path):
    path = tmp_path / "events.jsonl"
    for name, text in (("events.jsonl", "new"), ("events.jsonl.1", "old"), ("events.jsonl.2", "oldest")):
        (tmp_path / name).write_text(text)
    rotate(path, keep=2)
    assert not path.exists()
    assert (tmp_path / "events.jsonl.1").read_text() == "new"
    assert (tmp_path / "events.jsonl.2").read_text() == "old"


def test_unreadable_totals_are_ignored_with_a_warning(tmp_path, caplog):
    (tmp_path / "totals.json").write_text("{broken")
    log = CountLog(tmp_path, labels=LABELS, clock=Clock())
    assert log.totals == dict.fromkeys(LABELS, 0)
    assert "totals.json" in caplog.text
