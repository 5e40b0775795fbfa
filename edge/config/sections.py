"""The edge config's sections: one typed dataclass per INI section, each key with its default and help."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..classifier import CLASSIFIER_TYPES
from ..detectors import DETECTOR_TYPES
from .schema import setting

COUNTED_CLASSES = ("properly_masked", "improperly_masked", "unmasked")


@dataclass(frozen=True)
class CameraConfig:
    """Where frames come from, and how hard to try when they stop."""

    source: str = setting("picamera2", "picamera2, a device index or /dev/videoN, a video file, "
                          "an rtsp:// URL, or an image folder")
    width: int = setting(640, "capture width in pixels", low=64, high=4096)
    height: int = setting(480, "capture height in pixels", low=48, high=4096)
    fps: int = setting(15, "frames per second asked of the camera", low=1, high=120)
    stall_seconds: float = setting(10.0, "reopen the source after this long without a frame",
                                   low=0.5, high=600)
    max_restarts_per_minute: int = setting(5, "exit non-zero (systemd restarts us) after this many "
                                           "reopens within a minute, or in a row without a frame",
                                           low=1, high=100)
    loop: bool = setting(False, "replay a video file or folder forever instead of stopping at its end")


@dataclass(frozen=True)
class DetectorConfig:
    """Face detector plug-in: YuNet (OpenCV), an SSD face model (TFLite) or Haar cascades (the seed's)."""

    type: str = setting("yunet", "detector plug-in: yunet (OpenCV's YuNet through cv2.FaceDetectorYN, "
                        "finds the most masked faces; needs opencv-python >= 4.8), ssd (TFLite BlazeFace "
                        "models) or haar (OpenCV cascades, the seed's detector)", choices=DETECTOR_TYPES)
    ssd_models: tuple[str, ...] = setting(
        ("blazeface-back",), "ssd: detector models, bundled (blazeface-back, blazeface-short, "
        "blazeface-full) or paths to model directories; several are merged by NMS")
    min_score: float = setting(0.3, "ssd: smallest face score to report; lower finds more faces and "
                               "more false ones (the classifier's not_face check drops most)",
                               low=0.05, high=0.99)
    nms_threshold: float = setting(0.3, "ssd: boxes overlapping a stronger one by this IoU are dropped",
                                   low=0.05, high=0.95)
    ssd_input_size: int = setting(320, "ssd: run the models at this square input size (0: as trained, "
                                  "256 px for blazeface-back); larger finds smaller faces at the square "
                                  "of the cost", low=0, high=1024)
    num_threads: int = setting(2, "ssd: TFLite interpreter threads", low=1, high=8)
    yunet_model: str = setting("yunet-n", "yunet: detector model, bundled (yunet-n, yunet-s) or a path to a "
                               "model directory (model.onnx, model.json)")
    yunet_long_side: int = setting(320, "yunet: run on a copy of the frame scaled down to this long side "
                                   "(0: full frame); smaller is faster and finds fewer small faces",
                                   low=0, high=4096)
    yunet_min_score: float = setting(0.0, "yunet: smallest face score to report (0: the model's measured "
                                     "default, model.json default_score)", low=0.0, high=0.99)
    cascades: tuple[str, ...] = setting(
        ("frontalface_default",), "cascade names from cv2.data (frontalface_default, "
        "frontalface_alt2, profileface, ...) or paths to cascade XML files")
    detect_width: int = setting(320, "run detection on a copy of the frame this wide (0: full size)",
                                low=0, high=4096)
    scale_factor: float = setting(1.1, "Haar pyramid step", low=1.01, high=2.0)
    min_neighbors: int = setting(2, "Haar min neighbours; lower finds more faces and more false ones",
                                 low=0, high=50)
    # 44, not 48: the floor applies to the reframed box, which for a masked face is narrower than
    # the face as people box it; 44 keeps 0.93 of properly masked faces >= 48 px instead of 0.90 at
    # the same false boxes >= 48 px (bench/detector_compare.py, bench/gate_accuracy.py).
    min_face: int = setting(44, "smallest face to report, in full-frame pixels (the detector's box "
                            "as framed for the classifier)", low=8, high=2048)
    equalize: bool = setting(True, "equalise the grey histogram before detecting")
    every_n_frames: int = setting(2, "detect every Nth frame and follow tracks in between",
                                  low=1, high=30)
    clahe: bool = setting(True, "with equalize, use local contrast (CLAHE) instead of one histogram "
                          "for the whole frame, so a bright mask does not flatten the eyes")
    border: float = setting(0.0, "pad the detection frame on each side by this fraction of its width "
                            "(edge pixels repeated) so faces cut by the frame edge are found",
                            low=0.0, high=0.5)
    eye_cascades: tuple[str, ...] = setting(
        ("eye",), "eye-pair stage: eye cascades (eye, "
        "lefteye_2splits, righteye_2splits, eye_tree_eyeglasses) whose pairs of eyes give a face box "
        "the face cascades missed, e.g. a masked face; empty: off")
    eye_detect_width: int = setting(320, "run the eye-pair stage on a copy this wide; eyes need more "
                                    "pixels than faces (0: detect_width)", low=0, high=4096)
    eye_min_neighbors: int = setting(3, "Haar min neighbours of the eye cascades", low=0, high=50)
    calibrate_boxes: bool = setting(True, "reframe the SSD's boxes, the other cascades' and the eye-pair "
                                    "stage's to look like frontalface_default boxes, so crops frame faces "
                                    "alike")
    closeup_cascades: tuple[str, ...] = setting(
        (), "close-up pass: face cascades (e.g. frontalface_default, frontalface_alt2) run on a small, "
        "edge-padded copy of the frame for faces that fill it and are cut by its edges (someone "
        "right at the camera); empty: off")
    closeup_width: int = setting(160, "width of the close-up pass's copy of the frame", low=32, high=1024)
    closeup_border: float = setting(0.25, "close-up pass: pad each side by this fraction of the copy's "
                                    "width (edge pixels repeated)", low=0.0, high=0.5)
    closeup_min_fraction: float = setting(0.35, "close-up pass: smallest face, as a fraction of the "
                                          "frame's shorter side (smaller faces are the main pass's)",
                                          low=0.1, high=1.0)


@dataclass(frozen=True)
class ClassifierConfig:
    """Mask classifier plug-in: a TFLite model bundle (model.tflite + model.json)."""

    type: str = setting("tflite", "classifier plug-in", choices=CLASSIFIER_TYPES)
    model: str = setting("", "bundle directory or model.json; empty: the bundled default model")
    num_threads: int = setting(2, "interpreter threads", low=1, high=16)
    labels: tuple[str, ...] = setting(COUNTED_CLASSES, "classes the model must provide "
                                      "(a model may add a not_face reject class)")
    reject_label: str = setting("not_face", "model label meaning 'not a face': such boxes are dropped")
    min_confidence: float = setting(0.0, "ignore a frame's vote below this probability", low=0, high=1)


@dataclass(frozen=True)
class TrackingConfig:
    """Follow faces across frames, vote a label per person, count each person once."""

    iou_threshold: float = setting(0.3, "a box continues a track at or above this overlap",
                                   low=0.01, high=1)
    vote_frames: int = setting(5, "a person's label is the vote of their last N frames",
                               low=1, high=100)
    min_votes: int = setting(2, "detection frames needed before a person is counted (with every_n_frames "
                             "2, a person is counted 0.2 s after appearing at 15 frames/s)", low=1, high=100)
    expire_seconds: float = setting(2.0, "forget a track after this long unseen", low=0.1, high=600)


@dataclass(frozen=True)
class OutputsConfig:
    """What happens at the gate: LEDs, buzzer, event log."""

    devices: tuple[str, ...] = setting(("log",), "outputs to drive: led, buzzer, log, null",
                                       choices=("led", "buzzer", "log", "null"))
    ok_led_pin: int | None = setting(17, "BCM pin of the green LED (lit while a person passes)",
                                     low=0, high=40)
    alert_led_pin: int | None = setting(27, "BCM pin of the red alert LED", low=0, high=40)
    buzzer_pin: int | None = setting(22, "BCM pin of the buzzer", low=0, high=40)
    active_high: bool = setting(True, "pins drive high to switch on (no: active-low wiring)")
    alert_classes: tuple[str, ...] = setting(("improperly_masked", "unmasked"),
                                             "classes that light the alert and beep")
    beep_on_seconds: float = setting(0.15, "buzzer on time per beep", low=0.01, high=10)
    beep_off_seconds: float = setting(0.1, "buzzer off time per beep", low=0.01, high=10)
    beeps: int = setting(3, "beeps per alert", low=1, high=20)
    hold_seconds: float = setting(2.0, "keep an LED lit this long after its person left",
                                  low=0, high=60)


@dataclass(frozen=True)
class CountsConfig:
    """Where counts and events are written."""

    state_dir: Path = setting(Path("state"), "directory for events, totals and models")
    flush_seconds: float = setting(30.0, "each count is saved at once; this is how often totals are "
                                   "rewritten anyway and saving is retried after a full or read-only disk",
                                   low=1, high=3600)
    rotate_bytes: int = setting(10_000_000, "rotate the event log past this size", low=10_000,
                                high=10_000_000_000)
    keep_files: int = setting(5, "rotated event logs to keep", low=1, high=1000)


@dataclass(frozen=True)
class PreviewConfig:
    """Seeing what the gate sees: a window when a display exists, or annotated frames on disk."""

    window: bool = setting(False, "show a preview window (needs a display)")
    annotate_dir: Path | None = setting(None, "write annotated frames here (empty: don't)")
    annotate_video: Path | None = setting(None, "write an annotated .mp4/.avi here (empty: don't)")


@dataclass(frozen=True)
class HttpConfig:
    """The status page, /status.json and /metrics, served by maskipy-edge run (off by default)."""

    enabled: bool = setting(False, "serve the status page while the gate runs")
    bind: str = setting("127.0.0.1", "address to listen on; any address but a loopback one needs a "
                        "password (0.0.0.0: every network)")
    port: int = setting(8080, "TCP port (0: any free port, logged at start)", low=0, high=65535)
    password: str = setting("", "password for HTTP Basic (any user name) or a Bearer token; "
                            "required unless bind is a loopback address")
    preview: bool = setting(False, "serve a live annotated preview (/stream.mjpg, /snapshot.jpg) for "
                            "aiming the camera; it shows faces, so it is a separate opt-in; never recorded")
    preview_fps: float = setting(5.0, "most preview frames per second, encoded only while someone watches",
                                 low=0.2, high=30)
    preview_width: int = setting(640, "preview frames are scaled down to at most this width",
                                 low=160, high=1920)
    recent: int = setting(20, "counted people listed on the page (time, class, confidence; no image)",
                          low=1, high=500)


@dataclass(frozen=True)
class MqttConfig:
    """Publish counts, alerts and health to an MQTT broker, with Home Assistant discovery."""

    enabled: bool = setting(False, "publish to an MQTT broker")
    host: str = setting("localhost", "broker host name or address")
    port: int = setting(1883, "broker port (8883 is the usual TLS port)", low=1, high=65535)
    gate: str = setting("", "this gate's name in topics and in Home Assistant (empty: the host name)")
    topic_prefix: str = setting("maskipy", "topics are <topic_prefix>/<gate>/...")
    username: str = setting("", "broker user name (empty: anonymous)")
    password: str = setting("", "broker password")
    tls: bool = setting(False, "connect with TLS")
    ca_file: Path | None = setting(None, "CA certificate file for TLS (empty: the system's CAs)")
    cert_file: Path | None = setting(None, "client certificate for TLS (empty: none)")
    key_file: Path | None = setting(None, "client key for TLS, with cert_file")
    tls_insecure: bool = setting(False, "skip the broker host name check (testing only)")
    keepalive: int = setting(60, "seconds between pings; the broker marks the gate offline after 1.5x",
                             low=5, high=3600)
    reconnect_max_seconds: float = setting(2.0, "longest wait between reconnect attempts (a "
                                           "broker back after an outage is found within this)", low=1,
                                           high=600)
    discovery: bool = setting(True, "announce the gate's sensors to Home Assistant")
    discovery_prefix: str = setting("homeassistant", "Home Assistant's discovery topic prefix")
    fps_seconds: float = setting(10.0, "publish frames/s this often", low=1, high=3600)
    queue_max_events: int = setting(100_000, "events kept on disk while the broker is away; past this "
                                    "the oldest are dropped (and counted)", low=100, high=10_000_000)


EDGE_SCHEMA: dict[str, type] = {
    "camera": CameraConfig,
    "detector": DetectorConfig,
    "classifier": ClassifierConfig,
    "tracking": TrackingConfig,
    "outputs": OutputsConfig,
    "counts": CountsConfig,
    "preview": PreviewConfig,
    "http": HttpConfig,
    "mqtt": MqttConfig,
}


@dataclass(frozen=True)
class EdgeConfig:
    """Every edge section, validated; ``path`` is where it came from (None: all defaults)."""

    camera: CameraConfig
    detector: DetectorConfig
    classifier: ClassifierConfig
    tracking: TrackingConfig
    outputs: OutputsConfig
    counts: CountsConfig
    preview: PreviewConfig
    http: HttpConfig = field(default_factory=HttpConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    path: str | None = None

    def replace(self, section: str, **changes: Any) -> EdgeConfig:
        """A copy with some keys of one section changed (how CLI overrides are applied)."""
        updated = dataclasses.replace(getattr(self, section), **changes)
        return dataclasses.replace(self, **{section: updated})
