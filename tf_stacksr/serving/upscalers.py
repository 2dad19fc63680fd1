"""Upscalers: callables from uint8 LR faces [N, h, w, 3] to uint8 SR faces [N, h*s, w*s, 3].

Every consumer (evaluation, enhance, export's smoke test, the benchmarks) runs a model through
one of these, so each runs exactly the preprocessing the model was trained with (`data.pairs`:
uint8 -> [-1, 1] -> bicubic to the HR size -> generator -> uint8):

- `Bicubic`: the paper's baseline, exactly the blurry input A the networks receive.
- `GeneratorUpscaler`: a Keras generator (from a training run or a packed model).
- `SavedModelUpscaler`: an exported SavedModel's `serving_default` signature, whose graph holds
  that same preprocessing.

`tf_stacksr.models.load` builds the last two from any model name or path.
"""

from __future__ import annotations

import json
import os
from typing import Callable, Protocol

import keras
import numpy as np
import tensorflow as tf

from tf_stacksr import config as config_lib
from tf_stacksr.config import Config
from tf_stacksr.data import pairs
from tf_stacksr.networks import run_stages
from tf_stacksr.serving import signatures


class Upscaler(Protocol):
    name: str
    scale: int

    def __call__(self, lr: np.ndarray) -> np.ndarray: ...


class Bicubic:
    """LR -> `pairs.upscale` (bicubic, the network input A) -> uint8, for any LR size."""

    name = "bicubic"

    def __init__(self, scale: int):
        self.scale = int(scale)
        self._upscale = tf.function(self._forward, input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8)])

    def _forward(self, lr: tf.Tensor) -> tf.Tensor:
        size = tf.shape(lr)[1] * self.scale
        return pairs.float_to_uint8(pairs.upscale(pairs.uint8_to_float(lr), size))

    def __call__(self, lr: np.ndarray) -> np.ndarray:
        return self._upscale(tf.constant(lr, tf.uint8)).numpy()


def stages_from_uint8(generator: keras.Model, lr: tf.Tensor, hr_size: int, flip_ensemble: bool = False,
                      upscale: Callable[[tf.Tensor, int], tf.Tensor] = pairs.upscale,
                      branches: int = 1) -> list[tf.Tensor]:
    """uint8 LR batch -> every stage's output as uint8, LR first, HR last (`networks.run_stages`).

    `upscale` makes the network input A (`pairs.upscale`; the LiteRT export passes the same map
    written with ops LiteRT has).

    `branches` > 1 cuts a batch of at least that many faces into as many contiguous parts, run as
    independent branches of one graph: TensorFlow's inter-op threads run them side by side, which
    keeps CPU cores busier than one large batch does (as the flip ensemble's two passes already
    do). Each face's result stays the same up to one grey level (oneDNN picks its convolution
    kernels by batch size). Smaller batches run whole. The branches run side by side only in a
    graph (a tf.function or SavedModel); run eagerly, they follow one another.
    """
    def run(faces: tf.Tensor) -> list[tf.Tensor]:
        blurry = upscale(pairs.uint8_to_float(faces), hr_size)
        return [pairs.float_to_uint8(o) for o in run_stages(generator, blurry, flip_ensemble)]

    if branches == 1:
        return run(lr)
    n = tf.shape(lr)[0]
    # One traced function called once per part (and for the whole batch): tracing the generator
    # once instead of branches + 1 times keeps exports fast and their graphs small.
    run_part = tf.function(run, input_signature=[tf.TensorSpec([None, *lr.shape[1:]], tf.uint8)], autograph=False)

    def split() -> list[tf.Tensor]:
        parts = [run_part(lr[n * i // branches: n * (i + 1) // branches]) for i in range(branches)]
        return [tf.concat(stage, axis=0) for stage in zip(*parts)]

    return tf.cond(n >= branches, split, lambda: run_part(lr))


class GeneratorUpscaler:
    """One Keras generator as an upscaler of its training LR size (`cfg.lr_size`)."""

    def __init__(self, cfg: Config, generator: keras.Model, name: str):
        self.cfg, self.generator, self.name = cfg, generator, name
        self.scale, self.lr_size, self.hr_size = cfg.scale, cfg.lr_size, cfg.hr_size
        self._run = tf.function(lambda lr: stages_from_uint8(generator, lr, cfg.hr_size, cfg.flip_ensemble)[-1],
                                input_signature=[tf.TensorSpec([None, cfg.lr_size, cfg.lr_size, 3], tf.uint8)])

    def __call__(self, lr_images) -> np.ndarray:
        lr_images = np.asarray(lr_images)
        if lr_images.ndim != 4 or lr_images.shape[1:] != (self.lr_size, self.lr_size, 3) or lr_images.dtype != np.uint8:
            raise ValueError(f"{self.name}: expected uint8 LR faces of shape [N, {self.lr_size}, {self.lr_size}, 3],"
                             f" got {lr_images.dtype} {lr_images.shape}")
        return self._run(tf.convert_to_tensor(lr_images)).numpy()


class SavedModelUpscaler(GeneratorUpscaler):
    """The same callable over an exported SavedModel's `serving_default` signature.

    Sizes come from the signature itself, so any export of this project loads without its
    config; `cfg` is the training Config from the export's metadata file (None if absent). Batches
    over the export's max_batch (metadata) run in slices.
    """

    def __init__(self, path: str, name: str):
        self.name, self.generator = name, None
        self._loaded = tf.saved_model.load(path)  # keeps the signature's variables alive
        if signatures.UINT8_SIGNATURE not in self._loaded.signatures:
            raise ValueError(f"{path}: SavedModel has no {signatures.UINT8_SIGNATURE!r} signature;"
                             " expected one written by `python -m tf_stacksr.export`")
        signature = self._loaded.signatures[signatures.UINT8_SIGNATURE]
        in_spec = signature.structured_input_signature[1].get(signatures.UINT8_INPUT)
        out_spec = signature.structured_outputs.get(signatures.UINT8_OUTPUT)
        if in_spec is None or out_spec is None:
            raise ValueError(f"{path}: signature {signatures.UINT8_SIGNATURE!r} lacks input {signatures.UINT8_INPUT!r}"
                             f" or output {signatures.UINT8_OUTPUT!r}; expected an export of this project")
        self.lr_size, self.hr_size = int(in_spec.shape[1]), int(out_spec.shape[1])
        self.scale = self.hr_size // self.lr_size
        self.cfg, max_batch = None, None
        metadata_path = os.path.join(path, signatures.METADATA_FILE)
        if os.path.exists(metadata_path):
            with open(metadata_path) as fh:
                metadata = json.load(fh)
            self.cfg, max_batch = config_lib.from_dict(metadata["config"]), metadata.get("max_batch")
        run = lambda lr: signature(**{signatures.UINT8_INPUT: lr})[signatures.UINT8_OUTPUT]  # noqa: E731
        # The export refuses more than max_batch faces a call: larger batches go in slices.
        self._run = run if not max_batch else lambda lr: tf.concat(
            [run(lr[i: i + max_batch]) for i in range(0, max(len(lr), 1), max_batch)], axis=0)
