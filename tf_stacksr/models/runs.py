"""Reading a training run's (`--model_dir`'s) config and generator back (layout: `layout`).

Checkpoints hold the step, the networks and the optimisers; restoring a generator alone takes
the generator from the latest one.
"""

from __future__ import annotations

import os

import keras
import tensorflow as tf

from tf_stacksr import config as config_lib
from tf_stacksr.config import Config
from tf_stacksr.models.layout import CONFIG_FILE, checkpoint_dir, config_path


def latest_checkpoint(model_dir: str) -> str | None:
    return tf.train.latest_checkpoint(checkpoint_dir(model_dir))


def load_config(folder: str) -> Config:
    path = config_path(folder)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{folder}: no {CONFIG_FILE}; expected a training --model_dir or a packed model")
    return config_lib.load_json(path)


def restore_generator(model_dir: str, generator: keras.Model) -> str:
    """Set `generator`'s weights from the run's latest checkpoint; returns that checkpoint's path."""
    latest = latest_checkpoint(model_dir)
    if latest is None:
        raise FileNotFoundError(f"{checkpoint_dir(model_dir)}: no checkpoint found; train first")
    tf.train.Checkpoint(generator=generator).restore(latest).assert_existing_objects_matched().expect_partial()
    return latest
