"""Mask classifier plug-ins: one TFLite interpreter, built once, fed by the preprocess contract."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from .bundle import Bundle
from .config import ClassifierConfig
from .decision import DecisionRule
from .errors import ModelError
from .preprocess import to_input

log = logging.getLogger(__name__)


def load_interpreter_class() -> tuple[Any, str]:
    """The TFLite Interpreter class and the name of the runtime providing it.

    ai-edge-litert is the default (numpy 2, ~10x faster on x86); tflite-runtime is the legacy
    Pi path (numpy<2, Python <= 3.11); full TensorFlow is the workstation's last resort.
    """
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai-edge-litert"
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter

        return Interpreter, "tflite-runtime"
    except ImportError:
        pass
    try:
        import tensorflow as tf

        return tf.lite.Interpreter, "tensorflow.lite"
    except ImportError:
        raise ModelError("no TFLite runtime installed; pip install 'maskipy[edge]' "
                         "(ai-edge-litert) or 'maskipy[tflite]' (tflite-runtime)") from None


class TFLiteClassifier:
    """A bundle's model in a TFLite interpreter kept alive for the life of the process.

    Input dtype and quantization are read from the model, so int8, uint8 and float32 bundles all
    work. ``classify`` takes uint8 crops made by ``preprocess.crop_face`` and returns probabilities
    in the bundle's label order.
    """

    def __init__(self, bundle: Bundle, num_threads: int = 2) -> None:
        interpreter_class, self.runtime = load_interpreter_class()
        self.bundle = bundle
        try:
            self.interpreter = interpreter_class(model_path=str(bundle.model_path),
                                                 num_threads=num_threads)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{bundle.model_path}: the TFLite runtime cannot load it ({exc}); "
                             f"re-run maskipy-convert or deploy a good bundle") from None
        self._input = self.interpreter.get_input_details()[0]
        self._output = self.interpreter.get_output_details()[0]
        shape = tuple(int(v) for v in self._input["shape"])
        size = bundle.crop_spec.size
        if shape[1:] != (size, size, 3):
            raise ModelError(f"{bundle.model_path}: model input {shape[1:]} does not match the bundle's "
                             f"crop size {size}x{size}x3; re-convert the model")
        classes = int(self._output["shape"][-1])
        if classes != len(bundle.labels):
            raise ModelError(f"{bundle.model_path}: model has {classes} outputs but model.json lists "
                             f"{len(bundle.labels)} labels ({', '.join(bundle.labels)})")
        self.decision = DecisionRule.from_metadata(bundle.metadata, bundle.labels, str(bundle.json_path))
        self.input_dtype = np.dtype(self._input["dtype"])
        self._in_scale, self._in_zero = self._input["quantization"]
        self._out_scale, self._out_zero = self._output["quantization"]

    @property
    def labels(self) -> tuple[str, ...]:
        return self.bundle.labels

    def classify(self, crops: np.ndarray) -> np.ndarray:
        """Calibrated probabilities (N, len(labels)) for uint8 crops (N, size, size, 3).

        The bundle's temperature is applied (``decision.py``); pick labels with ``choose``.
        """
        return self.decision.calibrate(self.scores(crops))

    def scores(self, crops: np.ndarray) -> np.ndarray:
        """The model's own softmax (N, len(labels)), before the bundle's calibration: what golden
        outputs, parity and label probes compare, since they check the model file itself."""
        if crops.ndim == 3:
            crops = crops[None]
        batch = to_input(crops, self.input_dtype, self._in_scale, int(self._in_zero))
        out = np.empty((len(batch), len(self.labels)), dtype=np.float32)
        # One face at a time: the bundle's batch size is 1 and resizing the input tensor per
        # frame costs more than the ~2 ms a face takes.
        for i, item in enumerate(batch):
            self.interpreter.set_tensor(self._input["index"], item[None])
            self.interpreter.invoke()
            raw = self.interpreter.get_tensor(self._output["index"])[0]
            if self._out_scale:
                out[i] = (raw.astype(np.float32) - self._out_zero) * self._out_scale
            else:
                out[i] = raw
        return out

    def choose(self, probs: np.ndarray) -> np.ndarray:
        """The label index per row of ``classify``'s output, by the bundle's decision rule."""
        return self.decision.choose(probs)


CLASSIFIERS: dict[str, type] = {"tflite": TFLiteClassifier}


def build_classifier(config: ClassifierConfig, bundle: Bundle) -> TFLiteClassifier:
    """The classifier plug-in named by ``[classifier] type``, checked against the config's labels."""
    missing = [label for label in config.labels if label not in bundle.labels]
    extra = [label for label in bundle.labels
             if label not in config.labels and label != config.reject_label]
    if missing or extra:
        raise ModelError(f"{bundle.json_path}: model labels {', '.join(bundle.labels)} do not match "
                         f"[classifier] labels = {', '.join(config.labels)}"
                         f"{' (missing: ' + ', '.join(missing) + ')' if missing else ''}"
                         f"{' (unexpected: ' + ', '.join(extra) + ')' if extra else ''}; "
                         f"fix the config or deploy a model trained for these classes")
    classifier = CLASSIFIERS[config.type](bundle, num_threads=config.num_threads)
    log.info("classifier: %s via %s, labels %s, input %s", bundle.model_path.name,
             classifier.runtime, ",".join(bundle.labels), classifier.input_dtype)
    return classifier
