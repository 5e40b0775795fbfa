"""Tracking: IoU matching, per-person vote, count once, expiry, reject label; time is passed in."""

from __future__ import annotations

from maskipy.edge.config import TrackingConfig
from maskipy.edge.tracking import Observation, Tracker

A = (100, 100, 80, 80)
A_MOVED = (106, 104, 80, 80)
B = (400, 120, 70, 70)


def tracker(**changes) -> Tracker:
    options = {"vote_frames": 5, "min_votes": 3, "expire_seconds": 2.0, "iou_threshold": 0.3}
    options.update(changes)
    return Tracker(TrackingConfig(**options), reject_label="not_face")


def obs(box, label, confidence=0.9) -> Observation:
    return Observation(box, label, confidence)


def test_a_person_is_counted_once_when_the_vote_settles():
    t = tracker()
    events = []
    for i in range(10):
        box = A if i % 2 else A_MOVED
        events += t.update([obs(box, "unmasked")], now=i * 0.1)
        if i == 1:
            assert events == [] and t.tracks[0].label is None
    assert len(events) == 1
    assert events[0].label == "unmasked" and events[0].track_id == t.tracks[0].id
    assert events[0].time == 0.2  # the third frame settled it
    assert len(t.tracks) == 1


def test_vote_is_the_majority_of_the_last_frames():
    t = tracker()
    labels = ["properly_masked", "unmasked", "properly_masked", "unmasked", "properly_masked"]
    events = []
    for i, label in enumerate(labels):
        events += t.update([obs(A, label)], now=i * 0.1)
    assert [e.label for e in events] == ["properly_masked"]
    for i in range(5):  # the window slides: the label follows the recent frames
        t.update([obs(A, "improperly_masked")], now=1 + i * 0.1)
    assert t.tracks[0].label == "improperly_masked"
    assert t.tracks[0].counted


def test_two_people_are_two_tracks_and_two_counts():
    t = tracker(min_votes=2, vote_frames=3)
    events = []
    for i in range(3):
        events += t.update([obs(A, "unmasked"), obs(B, "properly_masked")], now=i * 0.1)
    assert sorted(e.label for e in events) == ["properly_masked", "unmasked"]
    assert len({e.track_id for e in events}) == 2


def test_tracks_expire_and_a_returning_person_is_a_new_count():
    t = tracker(min_votes=1, vote_frames=1, expire_seconds=2.0)
    first = t.update([obs(A, "unmasked")], now=0.0)
    assert t.update([obs(A, "unmasked")], now=1.9) == []
    t.expire(now=4.0)
    assert t.tracks == []
    again = t.update([obs(A, "unmasked")], now=4.1)
    assert len(first) == len(again) == 1 and again[0].track_id != first[0].track_id


def test_reject_label_boxes_are_dropped_and_never_counted():
    t = tracker(min_votes=1, vote_frames=1)
    events = t.update([obs(A, "not_face", 0.99), obs(B, "unmasked")], now=0.0)
    assert [e.label for e in events] == ["unmasked"]
    assert [tr.box for tr in t.tracks] == [B]


def test_low_confidence_frames_move_the_box_but_do_not_vote():
    t = Tracker(TrackingConfig(vote_frames=3, min_votes=2), min_confidence=0.6)
    t.update([obs(A, "unmasked", 0.3)], now=0.0)
    t.update([obs(A_MOVED, "unmasked", 0.3)], now=0.1)
    assert t.tracks[0].box == A_MOVED and len(t.tracks[0].votes) == 0
    events = t.update([obs(A, "unmasked", 0.7)], now=0.2) + t.update([obs(A, "unmasked", 0.7)], now=0.3)
    assert len(events) == 1


def test_ties_go_to_the_more_confident_label():
    t = tracker(vote_frames=4, min_votes=2)
    t.update([obs(A, "unmasked", 0.6)], now=0.0)
    t.update([obs(A, "properly_masked", 0.9)], now=0.1)
    t.update([obs(A, "unmasked", 0.6)], now=0.2)
    events = t.update([obs(A, "properly_masked", 0.9)], now=0.3)
    assert events == []  # counted already, as unmasked, on the third frame
    assert t.tracks[0].label == "properly_masked"


def test_wall_time_stamps_the_event_and_clear_forgets_everyone():
    t = tracker(min_votes=1, vote_frames=1)
    (event,) = t.update([obs(A, "unmasked")], now=5.0, wall_time=1_700_000_000.0)
    assert event.time == 1_700_000_000.0 and event.to_dict()["box"] == list(A)
    t.clear()
    assert t.tracks == []
