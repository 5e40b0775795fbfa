"""The console report of edge_pipeline.py: per frame type, time-to-count grid, bars, Pi estimate."""

from __future__ import annotations

from typing import Any

from bench_common import format_table


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _seconds(counts: dict[str, Any] | None) -> list[str]:
    if not counts or counts["median_s"] is None:
        return ["-", "-"]
    return [f"{counts['median_s']:.2f}/{counts['max_s']:.2f}",
            f"{_pct(counts['within_goal_share'])} of {counts['people']}"]


def _row(name: str, who: str, run: dict[str, Any], ratio: Any) -> list[Any]:
    stages = run["stages_ms"]
    false = run["false_positives_per_frame"]
    return [name, who, f"{stages['detect']['median']:.1f}/{stages['detect']['p90']:.1f}",
            f"{run['total_ms']['median']:.1f}", run["fps"], ratio if ratio is not None else "",
            _pct(run["recall"]), false if false is not None else "-", *_seconds(run.get("time_to_count"))]


def frame_rows(result: dict[str, Any]) -> list[list[Any]]:
    """Seed, edge and every variant of every frame type, in one table."""
    rows = []
    detector = result.get("runs", {}).get("edge", {}).get("detector", "shipped")
    for name, entry in result["frame_types"].items():
        rows.append(_row(name, "seed", entry["seed"], None))
        rows.append(_row(name, f"edge ({detector})", entry["edge"], entry["speedup_vs_seed"]))
        rows += [_row(name, f"edge[{v}]", r, r["speedup_vs_seed"]) for v, r in entry["variants"].items()]
    return rows


def print_report(result: dict[str, Any]) -> None:
    """The tables, as printed to the console."""
    print(f"backgrounds: {result['settings']['backgrounds']}; time to count at "
          f"{result['settings']['stream_fps']:.0f} frames/s (median/max s, share within the goal)")
    print(format_table(["frames", "pipeline", "detect med/p90 ms", "total med ms", "fps", "x seed",
                        "recall", "fp/frame", "count s med/max", "counted <=0.5 s"], frame_rows(result)))
    grid = result.get("time_to_count", {}).get("configs", {})
    if grid:
        streams = result["time_to_count"]["streams"]
        print(f"\ntime to count, the default detector, {streams['count']} streams of "
              f"{streams['frames']} frames "
              f"at 640x480 ({streams['people']} people walking in at staggered frames):")
        rows = []
        for name, run in grid.items():
            c = run["time_to_count"]
            rows.append([name, run["fps"], _pct(run["recall"]), f"{c['counted']}/{c['people']}",
                         c["median_s"], c["p90_s"], c["max_s"], _pct(c["within_goal_share"]),
                         _pct(c["counted_label_accuracy"]), c["extra_counts"],
                         c["spurious_counts"] + c["background_counts"]])
        print(format_table(["config", "fps", "recall", "counted", "median s", "p90 s", "max s", "<=0.5 s",
                            "label right", "counted twice", "bystanders+other"], rows))
    if result.get("bars"):
        print(f"\nbars: {result['bars']}")
    print_pi(result)


def print_pi(result: dict[str, Any]) -> None:
    """The model MACs and the Raspberry Pi ESTIMATE."""
    models = result.get("models")
    if models:
        print("\nmodels (MACs per call; Pi 4 ms ESTIMATED from MACs, see pi_estimate.py):")
        rows = [[name, m["mmacs"], m["compute_dtype"], m["threads"], m["x86_invoke_ms"], m["pi4_ms_estimate"],
                 m["sha256"][:12]] for name, m in {**models["detectors"],
                                                   "classifier": models["classifier"]}.items()]
        print(format_table(["model", "M MACs", "dtype", "threads", "x86 ms", "Pi 4 ms (est.)", "sha256"],
                           rows))
    estimate = result.get("pi_estimate", {}).get("frame_types", {})
    if estimate:
        print("\nESTIMATED Raspberry Pi frames/s (not measured on a Pi; see pi_estimate.assumptions "
              "in the JSON):")
        print(format_table(["frames", "pipeline", "Pi 4 detect/classify/other ms", "Pi 4 fps", "Pi 5 fps"],
                           [[name, who, "/".join(f"{v:.1f}" for v in e["pi4_ms_by_stage"].values()),
                             e["pi4_fps"], e["pi5_fps"]]
                            for name, runs in estimate.items() for who, e in runs.items()]))
