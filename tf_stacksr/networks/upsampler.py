"""One upsampling stage (paper Sec. 3.2): m residual structures of n convs, then a x2 deconv.

Each residual structure computes z + F(z) (Eq. 11), F being n convolutions (1x1 in the
paper, `res_kernel` here) with ReLU between them; the last conv of F has no activation so
the correction can be negative. A Conv2DTranspose then doubles height and width.
"""

from __future__ import annotations

import re

from keras import layers


def upsampling_stage(features, image, *, filters: int, res_blocks: int, res_convs: int, kernel: int, name: str):
    """Features (and the previous stage's image) at size s -> features at size 2s."""
    x = layers.Concatenate(name=f"{name}_in")([features, image])
    x = layers.Conv2D(filters, 1, name=f"{name}_proj")(x)
    for m in range(res_blocks):
        y = x
        for n in range(res_convs):
            y = layers.Conv2D(filters, kernel, padding="same", name=residual_conv_name(name, m, n))(y)
            if n < res_convs - 1:
                y = layers.ReLU(name=f"{name}_res{m}_relu{n}")(y)
        x = layers.Add(name=f"{name}_res{m}")([x, y])
    x = layers.Conv2DTranspose(filters, 4, strides=2, padding="same", name=f"{name}_deconv")(x)
    return layers.ReLU(name=f"{name}_deconv_relu")(x)


def residual_conv_name(stage: str, m: int, n: int) -> str:
    """The layer name of conv n of residual structure m in `stage` (e.g. g4_res1_conv3)."""
    return f"{stage}_res{m}_conv{n}"


_RESIDUAL_CONV = re.compile(r"g\d+_res\d+_conv(\d+)")


def is_residual_conv(layer_name: str) -> bool:
    return _RESIDUAL_CONV.fullmatch(layer_name) is not None


def is_residual_output(layer_name: str, res_convs: int) -> bool:
    """Whether `layer_name` is the last conv of a residual structure's F: zeroed, the structure
    is an identity."""
    match = _RESIDUAL_CONV.fullmatch(layer_name)
    return match is not None and int(match.group(1)) == res_convs - 1
