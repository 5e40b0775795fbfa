"""Mask classifier plug-ins: ``[classifier] type`` picks one from this registry.

A classifier is built once from a verified bundle; ``classify(crops)`` gives calibrated
probabilities in the bundle's label order and ``choose(probs)`` the decision rule's pick::

    classifier = build_classifier(config.classifier, load_bundle(path))
    labels = [classifier.labels[i] for i in classifier.choose(classifier.classify(crops))]
"""

from __future__ import annotations

import importlib
import logging
from typing import Any, Protocol

import numpy as np

from ..bundle import Bundle
from ..errors import ModelError

__all__ = ["CLASSIFIER_TYPES", "Classifier", "build_classifier"]

log = logging.getLogger(__name__)

# type -> (module in this package, class): the config's ``type`` choices come from here.
_PLUGINS: dict[str, tuple[str, str]] = {"tflite": ("tflite", "TFLiteClassifier")}
CLASSIFIER_TYPES = tuple(_PLUGINS)


class Classifier(Protocol):
    """What the frame loop needs of a classifier plug-in."""

    runtime: str

    @property
    def labels(self) -> tuple[str, ...]: ...

    def classify(self, crops: np.ndarray) -> np.ndarray: ...

    def choose(self, probs: np.ndarray) -> np.ndarray: ...


def build_classifier(config: Any, bundle: Bundle) -> Any:
    """The plug-in named by ``config.type`` (a ``ClassifierConfig``), checked against its labels."""
    missing = [label for label in config.labels if label not in bundle.labels]
    extra = [label for label in bundle.labels
             if label not in config.labels and label != config.reject_label]
    if missing or extra:
        raise ModelError(f"{bundle.json_path}: model labels {', '.join(bundle.labels)} do not match "
                         f"[classifier] labels = {', '.join(config.labels)}"
                         f"{' (missing: ' + ', '.join(missing) + ')' if missing else ''}"
                         f"{' (unexpected: ' + ', '.join(extra) + ')' if extra else ''}; "
                         f"fix the config or deploy a model trained for these classes")
    module, name = _PLUGINS[config.type]
    plugin = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    classifier = plugin(bundle, num_threads=config.num_threads)
    log.info("classifier: %s via %s, labels %s, input %s", bundle.model_path.name,
             classifier.runtime, ",".join(bundle.labels), classifier.input_dtype)
    return classifier
