"""What `evaluate --methods` names: `bicubic`, or any model `tf_stacksr.models.load` takes.

Every method is an upscaler (`serving.upscalers.Upscaler`): uint8 LR faces [N, h, w, 3] ->
uint8 SR faces [N, h*scale, w*scale, 3], with `.scale` and `.name`. Models are loaded only when
named, so evaluating bicubic needs no model code.
"""

from __future__ import annotations

import os

import numpy as np

from tf_stacksr.serving.upscalers import Bicubic, Upscaler

BICUBIC = Bicubic.name


def resolve(method: str, scale: int, hr_size: int) -> Upscaler:
    """`bicubic`, a model path or a shipped model's name -> an upscaler for `scale` and `hr_size`."""
    if method == BICUBIC:
        return Bicubic(scale)
    from tf_stacksr import models

    try:
        path = models.resolve(method)
    except FileNotFoundError as err:
        raise ValueError(f"--methods: {err}; expected 'bicubic', a model_dir, packed model or SavedModel path,"
                         " or a shipped model's name") from None
    upscaler = models.load(path)
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
