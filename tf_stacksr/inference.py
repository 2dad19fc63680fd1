"""Trained models as plain upscalers: uint8 LR faces in, uint8 SR faces out.

Used by evaluation, export and enhance, so that all three run the exact preprocessing the
model was trained with (`data.pairs`: uint8 -> [-1, 1] -> bicubic to HR size -> generator).
"""

from __future__ import annotations

import os

import keras
import numpy as np
import tensorflow as tf

from tf_stacksr import config as config_lib
from tf_stacksr.config import Config
from tf_stacksr.data import pairs
from tf_stacksr.networks import build_generator


def load_generator(model_dir: str) -> tuple[Config, keras.Model]:
    """Rebuild the generator from `model_dir/config.json` and restore its latest checkpoint."""
    config_path = os.path.join(model_dir, "config.json")
    if not os.path.exists(config_path):
        raise FileNotFoundError(f"{model_dir}: no config.json; expected a training --model_dir")
    cfg = config_lib.load_json(config_path)
    latest = tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))
    if latest is None:
        raise FileNotFoundError(f"{model_dir}/checkpoints: no checkpoint found; train first")
    generator = build_generator(cfg)
    tf.train.Checkpoint(generator=generator).restore(latest).assert_existing_objects_matched().expect_partial()
    return cfg, generator


def sr_from_uint8(generator: keras.Model, lr: tf.Tensor, hr_size: int, stage: int = -1) -> tf.Tensor:
    """uint8 LR batch -> uint8 SR batch at stage `stage` (default: the final, HR stage)."""
    blurry = pairs.upscale(pairs.uint8_to_float(lr), hr_size)
    outputs = generator(blurry, training=False)
    return pairs.float_to_uint8(outputs[stage])


class Upscaler:
    """Callable uint8 [N, h, w, 3] -> uint8 [N, h*scale, w*scale, 3] for one trained model."""

    def __init__(self, cfg: Config, generator: keras.Model, name: str):
        self.cfg, self.generator, self.name = cfg, generator, name
        self.scale, self.lr_size, self.hr_size = cfg.scale, cfg.lr_size, cfg.hr_size
        self._run = tf.function(lambda lr: sr_from_uint8(generator, lr, cfg.hr_size),
                                input_signature=[tf.TensorSpec([None, cfg.lr_size, cfg.lr_size, 3], tf.uint8)])

    def __call__(self, lr_images) -> np.ndarray:
        lr_images = np.asarray(lr_images)
        if lr_images.ndim != 4 or lr_images.shape[1:] != (self.lr_size, self.lr_size, 3) or lr_images.dtype != np.uint8:
            raise ValueError(f"{self.name}: expected uint8 LR faces of shape [N, {self.lr_size}, {self.lr_size}, 3],"
                             f" got {lr_images.dtype} {lr_images.shape}")
        return self._run(tf.convert_to_tensor(lr_images)).numpy()


def load_upscaler(path: str) -> Upscaler:
    """An Upscaler from a training model_dir (config.json + checkpoints)."""
    cfg, generator = load_generator(path)
    return Upscaler(cfg, generator, name=os.path.basename(os.path.normpath(path)))
