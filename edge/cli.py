"""The ``maskipy-edge`` command: run the gate, check a setup, print an example config, manage bundles."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .cli_runner import plain_help, run_command
from .config import EdgeConfig, example_config, exposed_secrets, load_edge_config
from .errors import CameraError, MaskipyError
from .outputs.counts import CountLog
from .service.journal import setup_logging

# PID_FILE: the bundle manager reads it to send SIGHUP after installing a model.
from .service.pidfile import PID_FILE, remove_pid_file, running_pid, write_pid_file
from .service.statelock import StateLock

log = logging.getLogger(__name__)

PROG = "maskipy-edge"


def load_config(args: argparse.Namespace) -> EdgeConfig:
    """The config file (or defaults) with the command line's overrides applied."""
    config = load_edge_config(args.config)
    warning = exposed_secrets(config)
    if warning:
        log.warning(warning)
    if getattr(args, "source", None):
        config = config.replace("camera", source=args.source)
    if getattr(args, "model", None):
        config = config.replace("classifier", model=str(args.model))
    if getattr(args, "state_dir", None):
        config = config.replace("counts", state_dir=Path(args.state_dir))
    return config


def install_signal_handlers(runtime: Any) -> dict[int, Any]:
    """SIGHUP reloads the model, SIGTERM and SIGINT stop the loop; returns the previous handlers."""
    handlers = {signal.SIGHUP: lambda *_: runtime.request_reload(),
                signal.SIGTERM: lambda *_: runtime.stop(),
                signal.SIGINT: lambda *_: runtime.stop()}
    return {signum: signal.signal(signum, handler) for signum, handler in handlers.items()}


def cmd_run(args: argparse.Namespace) -> int:
    """Run the gate until the source ends, --max-frames, SIGTERM or Ctrl-C."""
    from .runtime import EdgeRuntime

    config = load_config(args)
    with StateLock(config.counts.state_dir):
        runtime = EdgeRuntime(config)
        previous = install_signal_handlers(runtime)
        # run() re-checks the deployed model after this, so a deploy during start-up is never lost.
        pid_file = write_pid_file(config.counts.state_dir)
        try:
            counts = runtime.run(max_frames=args.max_frames)
        finally:
            remove_pid_file(pid_file)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
    timing = runtime.timer.as_dict()
    if timing["frames"] == 0 and not runtime.stop_requested and args.max_frames != 0:
        # A run that read nothing counted nothing: never a success, whatever the reason.
        raise CameraError(f"{runtime.source_spec}: no frame could be read (see the warnings above); "
                          f"give images or a video OpenCV can decode, or another source")
    print(f"{timing['frames']} frames, {timing['faces']} faces")
    _print_counts(config, runtime, counts)
    unsaved = [o.degraded for o in runtime.outputs if getattr(o, "degraded", None)]
    if unsaved:
        print(f"{PROG}: error: {'; '.join(unsaved)}; fix {config.counts.state_dir} (space, "
              f"permissions, totals.json) and the next start adds the logged events back", file=sys.stderr)
        return 1
    return 0


def _print_counts(config: EdgeConfig, runtime: Any, counts: dict[str, int]) -> None:
    """This run's counts, then the totals kept in the state folder (every run today), each named."""
    print("counted in this run:")
    for label in config.classifier.labels:
        print(f"  {label}: {counts.get(label, 0)}")
    log_output = next((o for o in runtime.outputs if isinstance(o, CountLog)), None)
    if log_output is None:
        return
    print(f"totals kept in {log_output.totals_path} (every run today, {log_output.day}; "
          f"another --state-dir starts from zero):")
    for label, count in log_output.totals.items():
        print(f"  {label}: {count}")


def _check_model(config: EdgeConfig) -> str:
    from .bundle import load_bundle
    from .classifier import build_classifier
    from .classifier.load import resolve_model

    bundle = load_bundle(resolve_model(config))
    classifier = build_classifier(config.classifier, bundle)
    size = bundle.crop_spec.size
    classifier.classify(np.zeros((1, size, size, 3), np.uint8))
    return f"{bundle.directory} ({', '.join(bundle.labels)}; {classifier.runtime})"


def _first_frame(config: EdgeConfig) -> np.ndarray:
    from .sources import open_source

    with open_source(config.camera.source, config.camera) as source:
        for _ in range(50):
            frame = source.read()
            if frame is not None:
                return frame
            if source.exhausted:
                break
    raise CameraError(f"{config.camera.source}: opened but gave no frame; check the camera or file")


def _check_source(config: EdgeConfig) -> str:
    frame = _first_frame(config)
    return f"{config.camera.source} gave a {frame.shape[1]}x{frame.shape[0]} frame"


def _check_pipeline(config: EdgeConfig) -> str:
    """Build the detector and run one source frame through detect, crop and classify, as ``run`` does."""
    from .classifier.load import load_model, resolve_model
    from .detectors import Detection, build_detector
    from .pipeline import crop_faces, to_observations
    from .preprocess import whole_image_box

    detector = build_detector(config.detector)
    bundle, classifier = load_model(config, resolve_model(config))
    frame = _first_frame(config)
    detections = detector.detect(frame)
    boxes, crops = crop_faces(frame, detections, bundle)
    if not boxes:  # no face in view: the classifier still has to run on this camera's pixels
        boxes, crops = crop_faces(frame, [Detection(whole_image_box(frame.shape, 0.0), 0.0)], bundle)
    observations = to_observations(boxes, classifier.classify(crops), classifier.labels, classifier.choose)
    found = ", ".join(o.label for o in observations) if detections else "no face in this frame"
    return f"detector and classifier ran on a {frame.shape[1]}x{frame.shape[0]} frame ({found})"


def _check_gpio(config: EdgeConfig) -> str:
    from .outputs import build_gpio_outputs, close_outputs

    wanted = [d for d in config.outputs.devices if d in ("led", "buzzer")]
    if not wanted:
        return "no GPIO outputs configured"
    outputs = build_gpio_outputs(config, None)
    close_outputs(outputs)
    return f"{', '.join(wanted)} pins claimable"


def _check_state_dir(config: EdgeConfig) -> str:
    """Whether ``run`` could write its counts there, without creating or writing anything."""
    state = Path(config.counts.state_dir)
    fix = "set [counts] state_dir or --state-dir"
    if state.is_dir():
        if not os.access(state, os.W_OK | os.X_OK):
            raise MaskipyError(f"{state}: not writable by this user; {fix}")
        return f"{state} writable"
    if state.exists():
        raise MaskipyError(f"{state}: not a folder; {fix}")
    parent = next((p for p in state.parents if p.exists()), Path("/"))
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise MaskipyError(f"{state} does not exist and {parent} is not a writable folder to create it "
                           f"in; {fix}")
    return f"{state} does not exist yet; run would create it (in {parent}, writable)"


def _check_mqtt(config: EdgeConfig) -> str:
    if not config.mqtt.enabled:
        return "off"
    from .outputs.mqtt import probe_broker

    return probe_broker(config.mqtt)


def _running_gate(config: EdgeConfig) -> str:
    """Why the checks would fail for a running gate's sake (it holds the camera and pins), or ''."""
    pid, _ = running_pid(config.counts.state_dir)
    if pid is None or pid == os.getpid():
        return ""
    return (f"maskipy-edge is already running (pid {pid}, {config.counts.state_dir}/{PID_FILE}) and "
            f"holds the camera and GPIO pins; stop it first (sudo systemctl stop maskipy-edge), "
            f"check, then start it again")


# The checks that reuse another's work: the pipeline check runs the model on a frame from the source.
CHECK_NEEDS = {"pipeline": ("model", "source")}


def cmd_check(args: argparse.Namespace) -> int:
    """Preflight: config, model, source, GPIO, state directory and MQTT broker, each ✓ or ✗."""
    try:
        config = load_config(args)
    except MaskipyError as exc:
        print(f"✗ config: {exc}")
        return 1
    print(f"✓ config: {config.path}")
    running = _running_gate(config)
    if running:
        print(f"✗ service: {running}")
        return 1
    checks: list[tuple[str, Callable[[EdgeConfig], str]]] = [
        ("model", _check_model), ("source", _check_source), ("pipeline", _check_pipeline),
        ("gpio", _check_gpio), ("state", _check_state_dir), ("mqtt", _check_mqtt)]
    failed: list[str] = []
    for name, check in checks:
        needs = [n for n in CHECK_NEEDS.get(name, ()) if n in failed]
        if needs:  # its cause is printed above once; the same message again would say nothing new
            failed.append(name)
            print(f"✗ {name}: not run: needs a working {' and '.join(needs)} (see above)")
            continue
        try:
            print(f"✓ {name}: {check(config)}")
        except (MaskipyError, OSError) as exc:
            failed.append(name)
            print(f"✗ {name}: {exc}")
        except Exception as exc:
            # gpiozero's pin errors are not ours; report them as a failed check, not a crash.
            failed.append(name)
            print(f"✗ {name}: {type(exc).__name__}: {exc}")
    return 1 if failed else 0


def cmd_example_config(args: argparse.Namespace) -> int:
    """Print an example config.ini listing every key with its default."""
    print(example_config(), end="")
    return 0


def cmd_bundle(argv: Sequence[str]) -> int:
    """Hand ``bundle ...`` to the bundle manager (maskipy.edge.swap)."""
    from .swap.cli import main as bundle_main

    return int(bundle_main(list(argv)) or 0)


def frame_limit(text: str) -> int:
    """``--max-frames``: a whole number, 0 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative; give 0 or more (0: open the source and stop)")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; each subcommand's help is its function's docstring."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    # -v after the subcommand too (`run -v`); SUPPRESS keeps `-v run` from being reset by the default.
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="log debug messages")
    common.add_argument("--config", help="config.ini (default: built-in defaults)")
    common.add_argument("--source", help="override [camera] source")
    common.add_argument("--model", help="override [classifier] model (a bundle directory)")
    common.add_argument("--state-dir", help="override [counts] state_dir")
    run = sub.add_parser("run", parents=[common], help=cmd_run.__doc__, description=cmd_run.__doc__)
    run.add_argument("--max-frames", type=frame_limit, default=None, help="stop after this many frames")
    run.set_defaults(func=cmd_run)
    check = sub.add_parser("check", parents=[common], help=cmd_check.__doc__,
                           description=cmd_check.__doc__)
    check.set_defaults(func=cmd_check)
    example = sub.add_parser("example-config", help=cmd_example_config.__doc__)
    example.set_defaults(func=cmd_example_config)
    sub.add_parser("bundle", help=cmd_bundle.__doc__, add_help=False)
    return plain_help(parser)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``maskipy-edge``; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bundle"]:
        return cmd_bundle(argv[1:])
    # OSError too: a state dir or device the service user cannot use is the operator's to fix.
    return run_command(PROG, build_parser(), run_subcommand, argv, errors=(MaskipyError, OSError),
                       hint=_os_error_hint)


def _os_error_hint(exc: BaseException) -> str:
    return "" if isinstance(exc, MaskipyError) else "; check the path's permissions and free space"


def run_subcommand(args: argparse.Namespace) -> int:
    setup_logging(args.verbose)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
