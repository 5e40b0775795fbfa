"""Multiply-accumulates of a TFLite model's convolutions, read from the interpreter's op list, and of
a YuNet ONNX detector's (``yunet_mmacs``: shapes from OpenCV DNN at the scaled frame).

The Pi estimate (``pi_estimate.py``) turns MACs into Pi milliseconds with a public per-MAC
rate, so it needs the work each model does per call, not its x86 time::

    python bench/model_macs.py edge/models/detectors/blazeface-back/model.tflite
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from maskipy.edge.classifier.interpreter import load_interpreter_class
from maskipy.edge.detectors.yunet import resolve_yunet_model, scaled_size

# Ops that do the multiply-accumulate work; everything else (ADD, RELU, pooling, reshapes) is
# memory traffic, small beside these in a MobileNet/BlazeFace-style network.
COUNTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def _interpreter(path: Path, threads: int = 1, input_size: int = 0) -> Any:
    """An allocated interpreter; ``input_size`` > 0 resizes a square image input first (as the SSD
    detector does for ``[detector] ssd_input_size``), so the op shapes are those it runs at."""
    interpreter_class, _ = load_interpreter_class()
    interpreter = interpreter_class(model_path=str(path), num_threads=threads)
    if input_size:
        source = interpreter.get_input_details()[0]
        channels = int(source["shape"][-1])
        interpreter.resize_tensor_input(source["index"], [1, input_size, input_size, channels])
    interpreter.allocate_tensors()
    return interpreter


def op_macs(op_name: str, weight_shape: tuple[int, ...], output_shape: tuple[int, ...]) -> int:
    """MACs of one op at batch 1.

    TFLite weight layouts: CONV_2D ``[out_c, k_h, k_w, in_c]`` (in_c already per group),
    DEPTHWISE_CONV_2D ``[1, k_h, k_w, out_c]``, FULLY_CONNECTED ``[out, in]``.
    """
    if op_name == "CONV_2D":
        _, out_h, out_w, out_c = output_shape
        _, k_h, k_w, in_c = weight_shape
        return out_h * out_w * out_c * k_h * k_w * in_c
    if op_name == "DEPTHWISE_CONV_2D":
        _, out_h, out_w, out_c = output_shape
        _, k_h, k_w, _ = weight_shape
        return out_h * out_w * out_c * k_h * k_w
    if op_name == "FULLY_CONNECTED":
        return int(np.prod(weight_shape))
    raise ValueError(f"{op_name}: not a multiply-accumulate op this counter knows")


def model_macs(path: str | Path, input_size: int = 0) -> dict[str, Any]:
    """Total MACs per call, MACs per op type, op counts, input shape and compute dtype of a .tflite.

    ``input_size``: count at this square input size instead of the model's own (0). The op list
    keeps the shapes the model was saved with, so the counts are scaled by the pixel ratio, which
    is exact for a fully convolutional network whose strides divide the size (BlazeFace's do).
    """
    interpreter = _interpreter(Path(path))
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    by_op: dict[str, int] = dict.fromkeys(COUNTED_OPS, 0)
    ops: dict[str, int] = dict.fromkeys(COUNTED_OPS, 0)
    compute = set()
    for op in interpreter._get_ops_details():
        name = op["op_name"]
        if name not in COUNTED_OPS:
            continue
        data, weights = (tensors[int(i)] for i in op["inputs"][:2])
        output = tensors[int(op["outputs"][0])]
        by_op[name] += op_macs(name, tuple(int(v) for v in weights["shape"]),
                               tuple(int(v) for v in output["shape"]))
        ops[name] += 1
        compute.add(np.dtype(data["dtype"]).name)
    if not sum(ops.values()):
        raise ValueError(f"{path}: no CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED op found")
    source = interpreter.get_input_details()[0]
    shape = [int(v) for v in source["shape"]]
    if input_size and input_size != shape[1]:
        if ops["FULLY_CONNECTED"]:
            raise ValueError(f"{path}: has FULLY_CONNECTED ops; its MACs do not scale with the input size")
        by_op = {k: round(v * (input_size / shape[1]) ** 2) for k, v in by_op.items()}
        shape = [shape[0], input_size, input_size, shape[3]]
    return {"macs": sum(by_op.values()), "mmacs": round(sum(by_op.values()) / 1e6, 2),
            "macs_by_op": by_op, "ops": ops, "input_shape": shape,
            "compute_dtype": "/".join(sorted(compute))}


def invoke_ms(path: str | Path, threads: int = 2, runs: int = 20, input_size: int = 0) -> float:
    """Median ms of one ``invoke()`` on this machine (zeros as input, after 3 untimed calls)."""
    interpreter = _interpreter(Path(path), threads, input_size)
    source = interpreter.get_input_details()[0]
    interpreter.set_tensor(source["index"], np.zeros(source["shape"], source["dtype"]))
    samples = []
    for i in range(runs + 3):
        start = time.perf_counter()
        interpreter.invoke()
        if i >= 3:
            samples.append(1000.0 * (time.perf_counter() - start))
    return round(statistics.median(samples), 3)


def yunet_input(long_side: int, frame: tuple[int, int] = (640, 480)) -> tuple[int, int]:
    """(width, height) YuNet runs at for a ``frame`` (width, height) scaled to ``long_side`` (0: as
    it is), as the edge's YuNet detector scales it."""
    width, height, _ = scaled_size((frame[1], frame[0]), long_side)
    return width, height


def yunet_mmacs(model: str, long_side: int, frame: tuple[int, int] = (640, 480)) -> float:
    """MMACs of one YuNet call on a ``frame`` (width, height; 640x480 by default) scaled to
    ``long_side`` (0: full): each convolution's output elements x its weights per output channel,
    shapes from OpenCV DNN at that input (its getFLOPS ignores the input size of the fixed 640x640
    export)."""
    net = cv2.dnn.readNetFromONNX(str(resolve_yunet_model(model) / "model.onnx"))
    w, h = yunet_input(long_side, frame)
    # YuNet's blocks need sides divisible by 32: FaceDetectorYN pads its input up to that.
    shape = (1, 3, -(-h // 32) * 32, -(-w // 32) * 32)
    ids, _, outputs = net.getLayersShapes(shape)
    total = 0
    for index, layer_id in enumerate(ids):
        layer = net.getLayer(int(np.ravel(layer_id)[0]))
        if layer.type == "Convolution" and layer.blobs:
            weights = layer.blobs[0]
            total += int(np.prod(outputs[index][0])) // weights.shape[0] * weights.size
    return round(total / 1e6, 1)


def yunet_invoke_ms(model: str, long_side: int, threads: int = 2, runs: int = 20,
                    frame: tuple[int, int] = (640, 480)) -> float:
    """Median ms of one ``cv2.FaceDetectorYN.detect`` on this machine, on a zero frame already at the
    size YuNet runs at (``yunet_input``), with ``threads`` OpenCV threads (after 3 untimed calls)."""
    w, h = yunet_input(long_side, frame)
    detector = cv2.FaceDetectorYN.create(str(resolve_yunet_model(model) / "model.onnx"), "", (w, h))
    image = np.zeros((h, w, 3), np.uint8)
    previous = cv2.getNumThreads()
    cv2.setNumThreads(threads)
    try:
        samples = []
        for i in range(runs + 3):
            start = time.perf_counter()
            detector.detect(image)
            if i >= 3:
                samples.append(1000.0 * (time.perf_counter() - start))
    finally:
        cv2.setNumThreads(previous)
    return round(statistics.median(samples), 3)


def main(argv: list[str] | None = None) -> int:
    for path in argv if argv is not None else sys.argv[1:]:
        info = model_macs(path)
        print(f"{path}: {info['mmacs']} MMAC per call ({info['compute_dtype']}, input "
              f"{info['input_shape']}), {info['ops']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
