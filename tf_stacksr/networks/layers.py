"""Small building blocks shared by the generator and the discriminators."""

from __future__ import annotations

import keras
from keras import layers


def normalization(kind: str, name: str) -> layers.Layer | None:
    """The `--norm` choice as a layer (None for 'none').

    Instance norm (GroupNormalization with one group per channel) is the default because it
    behaves the same in training and inference and does not depend on the per-replica batch.
    """
    if kind == "instance":
        return layers.GroupNormalization(groups=-1, epsilon=1e-5, name=name)
    if kind == "batch":
        return layers.BatchNormalization(name=name)
    if kind == "none":
        return None
    raise ValueError(f"--norm={kind!r}: expected instance, batch or none")


def conv_norm_act(x, filters: int, *, norm: str, name: str, strides: int = 1, kernel: int = 4,
                  activation: str = "lrelu", transpose: bool = False, use_norm: bool = True):
    """Conv (or transposed conv) -> optional norm -> activation, pix2pix style."""
    conv_cls = layers.Conv2DTranspose if transpose else layers.Conv2D
    x = conv_cls(filters, kernel, strides=strides, padding="same", name=f"{name}_conv",
                 kernel_initializer=keras.initializers.RandomNormal(stddev=0.02))(x)
    norm_layer = normalization(norm, f"{name}_norm") if use_norm else None
    if norm_layer is not None:
        x = norm_layer(x)
    if activation == "lrelu":
        return layers.LeakyReLU(0.2, name=f"{name}_lrelu")(x)
    if activation == "relu":
        return layers.ReLU(name=f"{name}_relu")(x)
    return x


def to_image(features, base, *, residual: bool, name: str):
    """Features -> RGB image in [-1, 1] (float32 even under mixed precision).

    With `residual`, the image is `base` (the input A area-downscaled to this size) plus a
    learned correction whose conv starts at zero, so an untrained stage outputs exactly the
    downscaled bicubic input and training only has to learn the missing detail; without it,
    a tanh output as in the paper.
    """
    init = "zeros" if residual else keras.initializers.RandomNormal(stddev=0.02)
    delta = layers.Conv2D(3, 3, padding="same", name=f"{name}_rgb", dtype="float32", kernel_initializer=init)(features)
    if residual:
        return layers.Add(name=name, dtype="float32")([base, delta])
    return layers.Activation("tanh", name=name, dtype="float32")(delta)


def area_downscale(image, factor: int, name: str):
    """Exact area (box) downscale by an integer factor; identity for factor 1."""
    if factor == 1:
        return image
    return layers.AveragePooling2D(factor, name=name, dtype="float32")(image)
