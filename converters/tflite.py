"""Keras → TFLite conversion: full-integer int8 (or uint8), float32, float16, dynamic range."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from maskipy.edge.preprocess import scale_pixels

log = logging.getLogger(__name__)


def _representative(crops: np.ndarray) -> Any:
    def generate() -> Iterator[list[np.ndarray]]:
        for crop in crops:
            yield [scale_pixels(np.asarray(crop)[None])]

    return generate


def convert(model: Any, quantization: str, representative_crops: np.ndarray | None = None,
            calibration: str = "minmax", percentile: float = 99.99) -> bytes:
    """The model as a .tflite flatbuffer.

    Keras 3 breaks ``TFLiteConverter.from_keras_model`` for nested models like ours, so the model
    is exported as a SavedModel first and converted from there. Full-integer modes calibrate on
    ``representative_crops`` (uint8 crops made by the edge's crop function), with the converter's
    min/max ranges (``minmax``) or ranges clipped to a ``percentile`` of the values (calibrate.py).
    """
    import tensorflow as tf

    with tempfile.TemporaryDirectory(prefix="maskipy-export-") as tmp:
        export_dir = Path(tmp) / "saved_model"
        model.export(str(export_dir), verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(str(export_dir))
        if quantization in ("int8", "uint8"):
            if representative_crops is None or not len(representative_crops):
                raise ValueError("full-integer quantization needs representative crops")
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            representative = _representative(representative_crops)
            converter.representative_dataset = representative
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            io_type = tf.int8 if quantization == "int8" else tf.uint8
            converter.inference_input_type = io_type
            converter.inference_output_type = io_type
            if calibration == "percentile":
                from .calibrate import percentile_quantize

                return percentile_quantize(converter, representative, io_type, percentile)
            if calibration != "minmax":
                raise ValueError(f"unknown calibration {calibration!r}")
        elif quantization == "float16":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        elif quantization == "dynamic":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        elif quantization != "float32":
            raise ValueError(f"unknown quantization {quantization!r}")
        return converter.convert()
