"""Helpers the fault tests share: the gate as a command line, and as an EdgeRuntime on replayed frames."""

from __future__ import annotations

import sys
from pathlib import Path


def gate_command(state: Path, source: str | Path, model: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "maskipy.edge.cli", "run", "--source", str(source), "--model", str(model),
            "--state-dir", str(state), *extra]


def gate(state: Path, frames, **kwargs):
    from maskipy.edge.config import load_edge_config
    from maskipy.edge.runtime import EdgeRuntime
    from maskipy.edge.service.sdnotify import SystemdNotifier
    from maskipy.edge.sources.replay import ReplaySource

    config = load_edge_config().replace("counts", state_dir=state)
    return EdgeRuntime(config, notifier=kwargs.pop("notifier", SystemdNotifier("")),
                       source_opener=lambda: ReplaySource(list(frames)), **kwargs)
