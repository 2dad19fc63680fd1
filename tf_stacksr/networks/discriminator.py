"""Conditional PatchGAN: scores (condition, image) pairs with a grid of real/fake logits.

Depth follows the stage resolution (one stride-2 layer at 16 px, up to three, i.e. the
70x70-receptive-field pix2pix PatchGAN, from 64 px on) so every stage gets patches of a
sensible size.
"""

from __future__ import annotations

import math

import keras
from keras import layers

from tf_stacksr.networks.layers import conv_norm_act


def build_patchgan(size: int, *, filters: int, norm: str, name: str) -> keras.Model:
    condition = keras.Input((size, size, 3), name=f"{name}_condition")
    image = keras.Input((size, size, 3), name=f"{name}_image")
    x = layers.Concatenate(name=f"{name}_pair")([condition, image])
    n_down = min(max(int(math.log2(size)) - 3, 1), 3)
    for i in range(n_down):
        x = conv_norm_act(x, filters * 2**i, norm=norm, strides=2, name=f"{name}_c{i}", use_norm=i > 0)
    x = conv_norm_act(x, filters * 2**n_down, norm=norm, name=f"{name}_c{n_down}")
    logits = layers.Conv2D(1, 4, padding="same", name=f"{name}_logits", dtype="float32")(x)
    return keras.Model([condition, image], logits, name=name)
