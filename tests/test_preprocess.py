"""to_input: the quantized model input is the float formula's, without its float32 copies."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from maskipy.edge.preprocess import scale_pixels, to_input

# (dtype, scale, zero point): MobileNetV2's int8 input (every pixel lands on a .5), a uint8 one, an odd one.
QUANTIZATIONS = [(np.int8, 1 / 127.5, -1), (np.uint8, 1 / 127.5, 127), (np.int8, 0.02, 3),
                 (np.int8, np.float32(0.007843138), -1)]


def float_formula(crops: np.ndarray, dtype: type, scale: float, zero_point: int) -> np.ndarray:
    """The contract spelled out: scale to [-1, 1], divide by the input scale, round half up, clip."""
    info = np.iinfo(dtype)
    return np.clip(np.floor(scale_pixels(crops) / scale + zero_point + 0.5), info.min, info.max).astype(dtype)


@pytest.mark.parametrize(("dtype", "scale", "zero_point"), QUANTIZATIONS)
def test_quantized_input_is_the_float_formula_for_every_pixel_value(dtype, scale, zero_point):
    every = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1).repeat(3, axis=3)
    crops = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    for pixels in (every, crops, crops[0]):
        got = to_input(pixels, dtype, scale, zero_point)
        assert got.dtype == np.dtype(dtype) and got.shape == pixels.shape
        assert np.array_equal(got, float_formula(pixels, dtype, scale, zero_point))


def test_float_inputs_and_bad_scales_are_unchanged():
    crops = np.random.default_rng(1).integers(0, 256, (1, 8, 8, 3), dtype=np.uint8)
    assert np.array_equal(to_input(crops, np.float32), scale_pixels(crops))
    with pytest.raises(ValueError, match="positive scale"):
        to_input(crops, np.int8, 0.0, 0)
    # Not uint8 (a caller's own float crops): the formula itself.
    assert np.array_equal(to_input(crops.astype(np.float32), np.int8, 1 / 127.5, -1),
                          float_formula(crops, np.int8, 1 / 127.5, -1))


def test_quantizing_crops_allocates_only_the_input_it_returns():
    """The gate quantizes every face, and nine probe crops at start: float32 copies of them (4 bytes a
    pixel, several at once: 11 MB for the probes) raised the process's peak and left glibc's heap
    bigger for good. A table lookup allocates the int8 result alone."""
    crops = np.random.default_rng(2).integers(0, 256, (9, 224, 224, 3), dtype=np.uint8)
    to_input(crops[:1], np.int8, 1 / 127.5, -1)  # the table, made once per quantization
    tracemalloc.start()
    try:
        batch = to_input(crops, np.int8, 1 / 127.5, -1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak <= 1.1 * batch.nbytes, f"{peak / 2**20:.1f} MiB allocated for {batch.nbytes / 2**20:.1f} MiB"
