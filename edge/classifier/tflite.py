"""The TFLite classifier plug-in: one interpreter, built once, fed by the preprocess contract."""

from __future__ import annotations

import numpy as np

from ..bundle import Bundle
from ..errors import ModelError
from ..preprocess import to_input
from .decision import DecisionRule
from .interpreter import load_interpreter


class TFLiteClassifier:
    """A bundle's model in a TFLite interpreter kept alive for the life of the process.

    Input dtype and quantization are read from the model, so int8, uint8 and float32 bundles all
    work. ``classify`` takes uint8 crops made by ``preprocess.crop_face`` and returns probabilities
    in the bundle's label order.
    """

    def __init__(self, bundle: Bundle, num_threads: int = 2) -> None:
        self.bundle = bundle
        self.interpreter, self.runtime = load_interpreter(
            bundle.model_path, num_threads, "; re-run maskipy-convert or deploy a good bundle")
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
