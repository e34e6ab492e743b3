"""Merging windows into segments (DESIGN.md section 10) on hand-written windows."""

from __future__ import annotations

import pytest

from service.timeline_report import merge_segments


def window(start: int, label: str | None, score: float = 0.5) -> dict:
    if label is None:
        return {"start_us": start, "end_us": start + 100, "state": "idle", "prediction": None}
    return {
        "start_us": start,
        "end_us": start + 100,
        "state": "classified",
        "prediction": {"label": label, "score": score},
    }


def test_consecutive_windows_with_one_label_merge_and_a_new_label_or_an_idle_window_ends_a_segment():
    windows = [
        window(0, "wave", 0.4),
        window(50, "wave", 0.8),
        window(100, "swipe", 0.9),
        window(150, None),
        window(200, "swipe", 0.7),
        window(250, "swipe", 0.5),
    ]
    segments = merge_segments(windows)
    assert [(s["label"], s["start_us"], s["end_us"], s["windows"]) for s in segments] == [
        ("wave", 0, 150, 2),
        ("swipe", 100, 200, 1),
        ("swipe", 200, 350, 2),
    ]
    assert [s["score"] for s in segments] == pytest.approx([0.6, 0.9, 0.6])


def test_only_idle_windows_make_no_segment():
    assert merge_segments([window(0, None), window(100, None)]) == []
    assert merge_segments([]) == []
