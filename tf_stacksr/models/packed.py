"""The compact format shipped models are stored in: a packed model folder.

A training run (config.json + TF checkpoints with optimiser state, ~34 MB at 16->64) is too big
to ship, and so is its float32 generator (2.8 M parameters, 11 MB). `pack` writes a *packed
model*: a folder with the run's `config.json` and `generator.npz`, every generator weight under
its Keras path; kernels (ndim >= 2) are stored as int8 with one float32 scale per last-axis
channel (symmetric rounding, w ~= q * scale), everything else (biases, norm parameters) as
float32. That is ~2.9 MB per model; the measured cost in PSNR is in docs/results.md.

A packed folder is a model path like any other: `tf_stacksr.models.load` takes it wherever a
training model_dir is taken. The shipped ones (`zoo`) are packed folders. Packing and loading
need Keras but not TensorFlow, so any Keras 3 backend can write and read them.
"""

from __future__ import annotations

import json
import os

import keras
import numpy as np

from tf_stacksr import config as config_lib
from tf_stacksr import files
from tf_stacksr.config import Config
from tf_stacksr.models.layout import CONFIG_FILE, WEIGHTS_FILE, config_path
from tf_stacksr.networks import build_generator

_SCALE_SUFFIX = "::scale"


def quantize(kernel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 per last-axis channel: returns (q int8, scale float32) with kernel ~= q * scale."""
    kernel = np.asarray(kernel, np.float32)
    peak = np.abs(kernel.reshape(-1, kernel.shape[-1])).max(axis=0)
    scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
    q = np.clip(np.rint(kernel / scale), -127, 127).astype(np.int8)
    return q, scale


def pack_weights(generator: keras.Model, quantized: bool = True) -> dict[str, np.ndarray]:
    arrays = {}
    for weight in generator.weights:
        value = np.asarray(keras.ops.convert_to_numpy(weight.value), np.float32)
        if quantized and value.ndim >= 2:
            arrays[weight.path], arrays[weight.path + _SCALE_SUFFIX] = quantize(value)
        else:
            arrays[weight.path] = value
    return arrays


def pack(cfg: Config, generator: keras.Model, out_dir: str, *, source: dict | None = None, quantized: bool = True) -> str:
    """Write `generator` (built from `cfg`) as a packed model folder; atomic, returns `out_dir`.

    `quantized=False` keeps every weight float32 (a trainer's interim save, packed to int8 later).
    """
    with files.atomic_folder(out_dir) as tmp:
        np.savez_compressed(os.path.join(tmp, WEIGHTS_FILE), **pack_weights(generator, quantized))
        with open(config_path(tmp), "w") as fh:
            json.dump({**cfg.to_dict(), **({"packed_from": source} if source else {})}, fh, indent=2, sort_keys=True)
    return out_dir


def load(path: str) -> tuple[Config, keras.Model]:
    """Rebuild a packed model's generator (dequantised to float32)."""
    cfg = config_lib.load_json(config_path(path))  # ignores the extra "packed_from" key
    generator = build_generator(cfg)
    assign_weights(path, generator)
    return cfg, generator


def assign_weights(path: str, generator: keras.Model) -> None:
    """Set `generator`'s weights (matched by Keras path) from a packed model's, dequantised."""
    with np.load(os.path.join(path, WEIGHTS_FILE)) as arrays:
        stored = {k for k in arrays.files if not k.endswith(_SCALE_SUFFIX)}
        expected = {w.path for w in generator.weights}
        if stored != expected:
            missing, extra = sorted(expected - stored), sorted(stored - expected)
            raise ValueError(f"{path}/{WEIGHTS_FILE} does not match the generator its {CONFIG_FILE} describes"
                             f" (missing {missing[:3]}, unexpected {extra[:3]})")
        for weight in generator.weights:
            value = arrays[weight.path].astype(np.float32)
            if weight.path + _SCALE_SUFFIX in arrays.files:
                value = value * arrays[weight.path + _SCALE_SUFFIX]
            if tuple(value.shape) != tuple(weight.shape):
                raise ValueError(f"{path}/{WEIGHTS_FILE}: {weight.path} has shape {value.shape},"
                                 f" the generator expects {tuple(weight.shape)}")
            weight.assign(value)
