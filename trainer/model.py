"""The classifier: a frozen MobileNetV2 backbone and the product's dense head, built in two halves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from maskipy.edge.errors import ConfigError

HEAD_UNITS = 128


def backbone_weights(weights: str) -> str | None:
    """``imagenet``, a local .h5 file, or ``none`` (random: tests only)."""
    if weights.lower() == "none":
        return None
    if weights == "imagenet":
        return "imagenet"
    path = Path(weights).expanduser()
    if not path.is_file():
        raise ConfigError(f"[train] weights = {weights}: file not found; use imagenet, none, or the "
                          f"path of mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5 "
                          f"(../shared/weights has it for offline machines)")
    return str(path)


def build_feature_extractor(input_size: int, weights: str, alpha: float = 1.0) -> Any:
    """MobileNetV2 (headless, frozen, BatchNorm in inference mode) + MaxPool(7,7) + Flatten."""
    import keras

    base = keras.applications.MobileNetV2(input_shape=(input_size, input_size, 3), alpha=alpha,
                                          include_top=False, weights=backbone_weights(weights))
    base.trainable = False
    inputs = keras.Input((input_size, input_size, 3), name="image")
    x = base(inputs, training=False)
    pool = max(1, input_size // 32)
    x = keras.layers.MaxPooling2D(pool_size=(pool, pool), name="head_pool")(x)
    x = keras.layers.Flatten(name="head_flatten")(x)
    return keras.Model(inputs, x, name="features")


def build_head(feature_dim: int, classes: int, dropout: float = 0.3, seed: int = 0) -> Any:
    """Dense(128, relu) → Dense(128, relu) → Dense(classes, softmax) on pooled backbone features."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((feature_dim,), name="features")
    x = keras.layers.Dropout(dropout, name="head_dropout0")(inputs)
    x = keras.layers.Dense(HEAD_UNITS, activation="relu", name="head_dense1")(x)
    x = keras.layers.Dropout(dropout, name="head_dropout1")(x)
    x = keras.layers.Dense(HEAD_UNITS, activation="relu", name="head_dense2")(x)
    outputs = keras.layers.Dense(classes, activation="softmax", name="head_probs")(x)
    return keras.Model(inputs, outputs, name="head")


def assemble(features: Any, head: Any) -> Any:
    """The deployable model: image in [-1, 1] → probabilities (what the converters quantize)."""
    import keras

    inputs = keras.Input(features.input_shape[1:], name="image")
    outputs = head(features(inputs))
    return keras.Model(inputs, outputs, name="maskipy_classifier")


# Fine-tuning cuts the frozen backbone after this layer: its 7x7x160 output is cached, and the last
# inverted-residual block and the 1x1 Conv_1 above it (a seventh of the backbone's compute) train.
CUT_LAYER = "block_15_add"


def backbone_of(features: Any) -> Any:
    """The MobileNetV2 inside a model made by ``build_feature_extractor``."""
    return next(layer for layer in features.layers if layer.name.startswith("mobilenetv2"))


def build_cut_extractor(features: Any) -> Any:
    """The frozen lower backbone: image → ``CUT_LAYER`` activations (what fine-tuning caches)."""
    import keras

    base = backbone_of(features)
    return keras.Model(base.input, base.get_layer(CUT_LAYER).output, name="lower_backbone")


def build_top(features: Any, head: Any) -> Any:
    """Trainable upper backbone + pool + head, sharing layers (and so weights) with ``features``.

    Convolutions train; BatchNorm layers stay frozen in inference mode, as the weights README asks.
    """
    import keras

    base = backbone_of(features)
    names = [layer.name for layer in base.layers]
    upper = base.layers[names.index(CUT_LAYER) + 1:]
    inputs = keras.Input(base.get_layer(CUT_LAYER).output.shape[1:], name="cut_features")
    x = inputs
    for layer in upper:
        is_norm = isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = not is_norm
        x = layer(x, training=False) if is_norm else layer(x)
    pool = features.get_layer("head_pool")
    x = keras.layers.MaxPooling2D(pool_size=pool.pool_size, name="top_pool")(x)
    x = keras.layers.Flatten(name="top_flatten")(x)
    return keras.Model(inputs, head(x), name="top")
