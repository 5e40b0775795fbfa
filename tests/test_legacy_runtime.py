"""The bundled int8 model answers the same in tflite-runtime 2.14 (numpy<2, the legacy Pi path) as in
ai-edge-litert. tflite-runtime cannot share a process with numpy 2, so it runs in the Python named by
MASKIPY_LEGACY_PYTHON (.ci/run makes one); the test skips where there is none."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from maskipy.edge.bundle import load_bundle
from maskipy.edge.classifier.tflite import TFLiteClassifier
from maskipy.edge.preprocess import crop_face, read_image, to_input, whole_image_box

LEGACY = os.environ.get("MASKIPY_LEGACY_PYTHON", "")

# Runs under the legacy Python: raw int8 outputs of tflite-runtime for the given int8 inputs.
SCRIPT = """
import sys, numpy as np
from tflite_runtime.interpreter import Interpreter
model, inputs, out = sys.argv[1:4]
interpreter = Interpreter(model_path=model, num_threads=1)
interpreter.allocate_tensors()
i, o = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
results = []
for item in np.load(inputs):
    interpreter.set_tensor(i["index"], item[None])
    interpreter.invoke()
    results.append(interpreter.get_tensor(o["index"])[0].copy())
np.save(out, np.array(results))
"""


@pytest.mark.skipif(not LEGACY or not Path(LEGACY).is_file(),
                    reason="MASKIPY_LEGACY_PYTHON (a Python <= 3.11 with tflite-runtime 2.14) not set")
def test_legacy_tflite_runtime_agrees_with_ai_edge_litert(default_bundle, shared_data, tmp_path):
    bundle = load_bundle(default_bundle)
    classifier = TFLiteClassifier(bundle, num_threads=1)
    paths = [p for label in ("properly_masked", "improperly_masked", "unmasked")
             for p in sorted((shared_data / "realworld-photos" / label).glob("*.jpg"))[:40]]
    crops = np.stack([crop_face(img, whole_image_box(img.shape, 0.2), bundle.crop_spec)
                      for img in (read_image(str(p)) for p in paths)])
    details = classifier.interpreter.get_input_details()[0]
    np.save(tmp_path / "in.npy", to_input(crops, details["dtype"], *details["quantization"]))
    subprocess.run([LEGACY, "-c", SCRIPT, str(bundle.model_path), str(tmp_path / "in.npy"),
                    str(tmp_path / "out.npy")], check=True, timeout=120)
    scale, zero = classifier.interpreter.get_output_details()[0]["quantization"]
    legacy = (np.load(tmp_path / "out.npy").astype(np.float32) - zero) * scale
    current = classifier.scores(crops)  # the model's own softmax, as the legacy script reads it
    # The two runtimes' int8 kernels round differently, a few output steps apart: near-ties may flip.
    agreement = float(np.mean(legacy.argmax(1) == current.argmax(1)))
    difference = np.abs(legacy - current)
    print(f"legacy vs litert: agreement {agreement:.3f}, mean |dp| {difference.mean():.4f}, "
          f"max |dp| {difference.max():.4f}")
    assert agreement >= 0.95
    assert difference.mean() <= 0.01


def legacy_edge(*argv: str) -> subprocess.CompletedProcess[str]:
    """maskipy-edge itself (the kit's code, not a bare interpreter) in the legacy Python."""
    return subprocess.run([LEGACY, "-m", "maskipy.edge.cli", *argv], capture_output=True, text=True,
                          timeout=300, check=False)


@pytest.mark.skipif(not LEGACY or not Path(LEGACY).is_file(),
                    reason="MASKIPY_LEGACY_PYTHON (a Python <= 3.11 with tflite-runtime 2.14) not set")
def test_the_kit_runs_on_the_legacy_runtime_and_counts_alike(default_bundle, scenes_dir, tmp_path):
    """`maskipy-edge run` and `bundle validate` on tflite-runtime 2.14 + numpy 1.x, as an older Pi
    install has them, against this venv's ai-edge-litert on the same scenes."""
    import json

    from maskipy.edge.cli import main

    probe = subprocess.run([LEGACY, "-c", "import numpy, ai_edge_litert"], capture_output=True, text=True)
    assert probe.returncode != 0, "the legacy venv must not have ai-edge-litert, or it is not the legacy path"
    validated = legacy_edge("bundle", "validate", str(default_bundle))
    assert validated.returncode == 0 and "golden output within" in validated.stdout, validated.stderr
    legacy = legacy_edge("run", "--source", str(scenes_dir), "--state-dir", str(tmp_path / "legacy"))
    assert legacy.returncode == 0, legacy.stderr
    assert "via tflite-runtime" in legacy.stderr
    assert main(["run", "--source", str(scenes_dir), "--state-dir", str(tmp_path / "litert")]) == 0

    def labels(state: str) -> list[tuple[int, str]]:
        lines = (tmp_path / state / "events.jsonl").read_text().splitlines()
        return [(event["track"], event["label"]) for event in map(json.loads, lines)]

    assert labels("legacy") == labels("litert") and len(labels("legacy")) >= 8
