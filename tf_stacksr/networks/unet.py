"""G1: a U-Net from the blurry HR input A down to an image at LR resolution (paper Sec. 3.1).

The encoder halves A down to a bottleneck of LR/4 (at least 2 px); the decoder doubles back
only up to LR size, concatenating the encoder features of the same size (the skip connections
across the bottleneck that keep the input's details).
"""

from __future__ import annotations

from keras import layers

from tf_stacksr.networks.layers import conv_norm_act


def unet_g1(inputs, *, hr_size: int, lr_size: int, filters: int, max_filters: int, norm: str):
    """Returns the decoder features at LR resolution (the input of the first upsampling stage)."""
    bottleneck = max(lr_size // 4, 2)
    skips = {}
    x, size, level = inputs, hr_size, 0
    while size > bottleneck:
        width = min(filters * 2**level, max_filters)
        x = conv_norm_act(x, width, norm=norm, strides=2, name=f"g1_down{level}", use_norm=level > 0)
        size //= 2
        level += 1
        skips[size] = x
    while size < lr_size:
        size *= 2
        level -= 1
        width = min(filters * 2**max(level - 1, 0), max_filters)
        x = conv_norm_act(x, width, norm=norm, strides=2, transpose=True, activation="relu", name=f"g1_up{level}")
        x = layers.Concatenate(name=f"g1_skip{level}")([x, skips[size]])
    return x
