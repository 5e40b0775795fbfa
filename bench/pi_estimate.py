"""An ESTIMATE of the edge loop's Raspberry Pi 4/5 frames/s from model MACs and public Pi figures.

Not a measurement: run ``bench/edge_pipeline.py --quick`` on the Pi for real numbers. How it is
built (every figure and assumption is also written into the JSON, ``pi_estimate.assumptions``):

- TFLite model time on a Pi 4 = MACs per call (``model_macs.py``) / a per-MAC rate taken from one
  public figure: int8 MobileNetV2-224 (300 M MACs, Sandler et al. 2018, table 4) runs in about
  22 ms on a Pi 4 (TFLite benchmark_model, 4 threads; bench/README.md). The shipped classifier is
  that network on 160 px crops (``model_macs`` counts its MACs; 299.7 M at 224 px), priced at that rate.
- The BlazeFace detectors are float32 (fp16 weights dequantized at load): float MACs are taken as
  FLOAT_OVER_INT8 times dearer than int8 ones on the Pi 4's Cortex-A72 (XNNPACK; 1.5-2.5x is the
  usual range). Fewer threads than 4 cost PI_THREAD_SLOWDOWN.
- YuNet (the default detector; float32 ONNX in OpenCV DNN, ``cv2.FaceDetectorYN``): its MACs
  (``model_macs.yunet_mmacs``, on a 640x480 frame scaled to ``yunet_long_side``) are priced the same
  way. ASSUMED, not measured: OpenCV DNN on the Pi runs float MACs at XNNPACK float's rate.
- Everything else (resize, letterbox, box decoding, NMS, crops, tracking; Haar cascades) scales
  from this machine by the Pi 4 / this machine ratio of one plain Haar pass on a 320-px-wide frame
  (PI4_HAAR_320_MS over ``haar_320_reference_ms``): plain scalar/SIMD CPU work.
- A Pi 5 (Cortex-A76, 2.4 GHz) is taken as PI5_OVER_PI4 times a Pi 4.
"""

from __future__ import annotations

from typing import Any

from model_macs import invoke_ms, model_macs, yunet_input, yunet_invoke_ms, yunet_mmacs

PI4_INT8_MOBILENETV2_MS = 22.0
MOBILENETV2_MMACS = 300.0
PI4_INT8_MMAC_PER_MS = MOBILENETV2_MMACS / PI4_INT8_MOBILENETV2_MS
FLOAT_OVER_INT8 = 2.0
PI_THREAD_SLOWDOWN = {1: 3.2, 2: 1.7, 3: 1.25, 4: 1.0}
PI4_HAAR_320_MS = 100.0
PI5_OVER_PI4 = 2.5

ASSUMPTIONS = {
    "what": "ESTIMATE from MAC counts and public figures, not a measurement on a Pi",
    "pi4_int8_rate": f"{PI4_INT8_MMAC_PER_MS:.1f} M int8 MACs/ms: int8 MobileNetV2-224 "
                     f"({MOBILENETV2_MMACS:.0f} M MACs, Sandler et al. 2018) ≈ {PI4_INT8_MOBILENETV2_MS} ms "
                     "on a Pi 4, TFLite benchmark_model, 4 threads (bench/README.md reference)",
    "float_over_int8": f"{FLOAT_OVER_INT8}x per MAC for float32 models (XNNPACK on Cortex-A72; "
                       "1.5-2.5x is the usual range)",
    "threads": f"time at N threads = 4-thread time x {PI_THREAD_SLOWDOWN} (assumed, imperfect scaling)",
    "other_cpu_work": f"this machine's ms x (Pi 4 plain Haar 320 px ≈ {PI4_HAAR_320_MS} ms / the same pass "
                      "timed here)",
    "yunet": "YuNet (float32 ONNX, OpenCV DNN): its MACs priced as float32 TFLite ones above, i.e. "
             "ASSUMED that OpenCV DNN on the Pi runs float MACs at XNNPACK float's rate (not measured); "
             "MACs and x86 ms per call on a 640x480 (4:3) frame scaled to yunet_long_side, so 16:9 "
             "frames (fewer rows to run) are overestimated; priced at [detector] num_threads (2) like "
             "the SSD, though the edge leaves OpenCV at its default (all 4 cores of a Pi 4: faster)",
    "detect_estimate": "ssd and yunet runs: the models' Pi 4 ms per detect call + the rest of detect "
                       "(x86 detect ms per detected frame - the models' x86 ms per call) x cpu_factor; "
                       "haar: x86 detect ms x cpu_factor",
    "pi5_over_pi4": PI5_OVER_PI4,
    "decode": "left out: the Pi camera hands over raw frames",
}


def model_figures(path: str, threads: int, runs: int = 20, input_size: int = 0) -> dict[str, Any]:
    """MACs, compute dtype, Pi 4 ms per call (estimated) and this machine's ms per invoke, at
    ``input_size`` (0: the model's own input size)."""
    info = model_macs(path, input_size)
    return {"path": path, "mmacs": info["mmacs"], "compute_dtype": info["compute_dtype"],
            "input_shape": info["input_shape"], "threads": threads,
            "pi4_ms_estimate": round(tflite_pi4_ms(info, threads), 2),
            "x86_invoke_ms": invoke_ms(path, threads, runs, input_size)}


def tflite_pi4_ms(info: dict[str, Any], threads: int) -> float:
    """Pi 4 ms of one call of a TFLite model at ``threads``, from ``model_macs``'s MACs and compute dtype."""
    slowdown = PI_THREAD_SLOWDOWN.get(min(4, threads), 1.0)
    dtype_factor = 1.0 if "int8" in info["compute_dtype"] else FLOAT_OVER_INT8
    return info["mmacs"] / PI4_INT8_MMAC_PER_MS * dtype_factor * slowdown


def classifier_pi4_ms(info: dict[str, Any]) -> dict[int, float]:
    """The Pi 4 estimate of one classifier call at 2 and 4 threads, from ``model_macs(path)`` of the
    model (the shipped classifier is int8; at 224 px this is the public 22 ms, at 160 px about half)."""
    return {t: round(tflite_pi4_ms(info, t), 1) for t in (2, 4)}


def yunet_figures(model: str, long_side: int, threads: int, runs: int = 20) -> dict[str, Any]:
    """As ``model_figures`` for a YuNet model run on a 640x480 frame scaled to ``long_side`` (0: full):
    MACs, Pi 4 ms per call (estimated; float32) and this machine's ms per ``FaceDetectorYN.detect``."""
    mmacs = yunet_mmacs(model, long_side)
    slowdown = PI_THREAD_SLOWDOWN.get(min(4, threads), 1.0)
    pi4_ms = mmacs / PI4_INT8_MMAC_PER_MS * FLOAT_OVER_INT8 * slowdown
    w, h = yunet_input(long_side)
    return {"path": model, "mmacs": mmacs, "compute_dtype": "float32", "input_shape": [1, 3, h, w],
            "frame": [640, 480], "threads": threads, "pi4_ms_estimate": round(pi4_ms, 2),
            "x86_invoke_ms": yunet_invoke_ms(model, long_side, threads, runs)}


def run_pi_ms(run: dict[str, Any], setup: dict[str, Any], models: dict[str, Any], cpu_factor: float
              ) -> dict[str, float]:
    """Estimated Pi 4 ms per frame of one run, by stage, from its x86 stage means."""
    mean = {s: run["stages_ms"][s]["mean"] for s in run["stages_ms"]}
    frames, inferred = run["frames"], run["inferred_frames"]
    detect = mean["detect"] * cpu_factor
    names = setup.get("detector_models", setup.get("ssd_models", []))  # ssd_models: older JSON
    if setup["detector"] in ("ssd", "yunet") and names and inferred:
        per_inferred = mean["detect"] * frames / inferred
        detectors = [models["detectors"][name] for name in names]
        rest = max(0.0, per_inferred - sum(d["x86_invoke_ms"] for d in detectors))
        detect = inferred / frames * (sum(d["pi4_ms_estimate"] for d in detectors) + rest * cpu_factor)
    classify = run["faces_classified_per_frame"] * models["classifier"]["pi4_ms_estimate"]
    other = (mean["preprocess"] + mean["track_outputs"]) * cpu_factor
    return {"detect": round(detect, 2), "classify": round(classify, 2), "other": round(other, 2)}


def pi_estimate(result: dict[str, Any]) -> dict[str, Any]:
    """Pi 4 and Pi 5 frames/s of every edge run of every frame type (see the module docstring)."""
    models, reference = result.get("models"), result.get("haar_320_reference_ms")
    if not models or not reference:
        return {}
    cpu_factor = PI4_HAAR_320_MS / reference
    out: dict[str, Any] = {"estimate_only": True, "assumptions": ASSUMPTIONS,
                           "cpu_factor": round(cpu_factor, 2), "frame_types": {}}
    for name, entry in result["frame_types"].items():
        runs = {"edge": entry["edge"], **{f"edge[{k}]": v for k, v in entry["variants"].items()}}
        out["frame_types"][name] = {}
        for who, run in runs.items():
            stages = run_pi_ms(run, result["runs"][who], models, cpu_factor)
            ms = sum(stages.values())
            out["frame_types"][name][who] = {"pi4_ms_by_stage": stages, "pi4_fps": round(1000.0 / ms, 1),
                                             "pi5_fps": round(PI5_OVER_PI4 * 1000.0 / ms, 1)}
    return out
