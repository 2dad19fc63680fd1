"""What `evaluate` scores: an upscaler is any callable uint8 LR faces -> uint8 SR faces.

Protocol: `up(lr)` maps uint8 [N, h, w, 3] to uint8 [N, h*scale, w*scale, 3], and `up.scale`
and `up.name` say what it is. `bicubic` is built here (the paper's baseline, and exactly the
blurry input A the networks receive); every other method string is a trained model path or
the name of a shipped model (`tf_stacksr.pretrained`), loaded by
`tf_stacksr.inference.load_upscaler` (imported only then, so evaluating bicubic needs no model
code).
"""

from __future__ import annotations

import os
from typing import Protocol

import numpy as np
import tensorflow as tf

from tf_stacksr.data import pairs

BICUBIC = "bicubic"


class Upscaler(Protocol):
    name: str
    scale: int

    def __call__(self, lr: np.ndarray) -> np.ndarray: ...


class Bicubic:
    """LR -> `pairs.upscale` (bicubic, the network input A) -> uint8."""

    name = BICUBIC

    def __init__(self, scale: int):
        self.scale = int(scale)
        self._upscale = tf.function(self._forward, input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8)])

    def _forward(self, lr: tf.Tensor) -> tf.Tensor:
        size = tf.shape(lr)[1] * self.scale
        return pairs.float_to_uint8(pairs.upscale(pairs.uint8_to_float(lr), size))

    def __call__(self, lr: np.ndarray) -> np.ndarray:
        return self._upscale(tf.constant(lr, tf.uint8)).numpy()


def resolve(method: str, scale: int, hr_size: int) -> Upscaler:
    """`bicubic`, a model path or a shipped model's name -> an upscaler for `scale` and `hr_size`."""
    if method == BICUBIC:
        return Bicubic(scale)
    try:
        from tf_stacksr import pretrained
        from tf_stacksr.inference import load_upscaler

        method = pretrained.resolve(method)
    except ImportError as err:
        raise ValueError(f"--methods: loading the model {method!r} needs tf_stacksr.inference ({err})") from err
    except FileNotFoundError as err:
        raise ValueError(f"--methods: {err}; expected 'bicubic', a model_dir, packed model or SavedModel path,"
                         " or a shipped model's name") from None
    upscaler = load_upscaler(method)
    if int(upscaler.scale) != scale:
        raise ValueError(f"--methods: model {method!r} upscales x{upscaler.scale}, but --scale={scale}")
    trained_size = getattr(upscaler, "hr_size", None)  # models that only take their training size say so
    if trained_size is not None and int(trained_size) != hr_size:
        raise ValueError(f"--methods: model {method!r} was trained for {trained_size} px faces, but --hr_size={hr_size}")
    return upscaler


def split_label(method: str) -> tuple[str | None, str]:
    """`LABEL=MODEL` -> (LABEL, MODEL), the name reports use; a plain method -> (None, method)."""
    label, sep, rest = method.partition("=")
    if sep and label and rest and not os.path.exists(method):
        return label, rest
    return None, method


def display_name(upscaler: Upscaler, method: str) -> str:
    """The upscaler's own name, else the model folder's name."""
    return getattr(upscaler, "name", None) or os.path.basename(os.path.normpath(method))


def check_output(name: str, lr: np.ndarray, sr: np.ndarray, scale: int) -> np.ndarray:
    """The SR batch as uint8 numpy, or a clear error when a method breaks the protocol."""
    sr = np.asarray(sr)
    expected = (lr.shape[0], lr.shape[1] * scale, lr.shape[2] * scale, 3)
    if sr.shape != expected or sr.dtype != np.uint8:
        raise ValueError(f"method {name!r} returned {sr.dtype} {sr.shape} for LR {lr.shape}; expected uint8 {expected}")
    return sr
