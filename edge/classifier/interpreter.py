"""The TFLite interpreter, found once: ai-edge-litert, else tflite-runtime, else TensorFlow's tf.lite.

The classifier and the SSD detector both build theirs here, so the fallback and its messages live
in one place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ModelError


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


def load_interpreter(model_path: Path, num_threads: int, fix: str) -> tuple[Any, str]:
    """An allocated interpreter for ``model_path`` and its runtime's name; a file the runtime cannot
    load is a ModelError that ends with ``fix``."""
    interpreter_class, runtime = load_interpreter_class()
    try:
        # The model is read into memory, not memory-mapped (model_path= maps it): a file rewritten
        # in place under the running gate (a hand `cp` over current/model.tflite) would otherwise
        # end the process with SIGBUS and no log line. The interpreter keeps these bytes alive.
        content = model_path.read_bytes()
    except OSError as exc:
        raise ModelError(f"{model_path}: cannot read the model ({exc.strerror}){fix}") from None
    try:
        interpreter = interpreter_class(model_content=content, num_threads=num_threads)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"{model_path}: the TFLite runtime cannot load it ({exc}){fix}") from None
    return interpreter, runtime
