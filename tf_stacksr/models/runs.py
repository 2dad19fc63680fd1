"""Reading a training run's (`--model_dir`'s) config and generator back (layout: `layout`).

Checkpoints hold the step, the networks and the optimisers; restoring a generator alone takes
the generator from the newest checkpoint that reads. `restore_newest_readable` is the one rule,
used by training's resume and by loading a run for evaluation or export: a checkpoint cut short
(a kill or a full disk during a save) or gone is skipped with a warning, and the next older one
restored.
"""

from __future__ import annotations

import os
import re
from typing import Callable

import keras
import tensorflow as tf
from absl import logging
from google.protobuf.message import DecodeError

from tf_stacksr import config as config_lib
from tf_stacksr.config import Config
from tf_stacksr.models.layout import CONFIG_FILE, checkpoint_dir, config_path

# What reading a truncated, corrupt or missing checkpoint raises (IndexError: "Read less bytes
# than requested" of a truncated data file; DataLossError, NotFoundError: OpErrors).
READ_ERRORS = (tf.errors.OpError, IndexError, DecodeError)

# The checkpoint this process last restored from each run (absolute model_dir -> prefix).
_restored: dict[str, str] = {}


class UnreadableCheckpointError(FileNotFoundError):
    """A run's checkpoints all fail to read: there is no usable one."""


def latest_checkpoint(model_dir: str) -> str | None:
    return tf.train.latest_checkpoint(checkpoint_dir(model_dir))


def checkpoints_newest_first(folder: str) -> list[str]:
    """Every checkpoint prefix in `folder`, newest first: tf.train.CheckpointManager's list (its
    `checkpoint` file, in saving order), then any other `<prefix>.index` on disk, highest number first."""
    state = tf.train.get_checkpoint_state(folder)
    listed = list(state.all_model_checkpoint_paths) if state else []
    if state and state.model_checkpoint_path and state.model_checkpoint_path not in listed:
        listed.append(state.model_checkpoint_path)
    listed = [os.path.join(folder, p) if not os.path.isabs(p) else p for p in listed][::-1]
    number = lambda prefix: int(m.group(1)) if (m := re.search(r"-(\d+)$", prefix)) else -1  # noqa: E731
    on_disk = sorted((name[: -len(".index")] for name in tf.io.gfile.listdir(folder) if name.endswith(".index")),
                     key=number, reverse=True) if tf.io.gfile.isdir(folder) else []
    others = [os.path.join(folder, name) for name in on_disk if os.path.join(folder, name) not in listed]
    return listed + others


def restore_newest_readable(folder: str, restore: Callable[[str], object]) -> str | None:
    """`restore(prefix)` the newest checkpoint in `folder` that reads; returns its prefix (None: no checkpoint).

    Each one that fails to read is logged as a warning naming it, and the next older one is tried;
    UnreadableCheckpointError (naming the folder and how to start over) if none reads.
    """
    failed = []
    for prefix in checkpoints_newest_first(folder):
        try:
            restore(prefix)
        except READ_ERRORS as err:
            reason = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
            logging.warning("Checkpoint %s cannot be read (%s); trying the next older one", prefix, reason)
            failed.append(f"{os.path.basename(prefix)} ({reason})")
            continue
        if failed:
            logging.warning("Restored %s: the newer %s could not be read", prefix, ", ".join(failed))
        return prefix
    if failed:
        raise UnreadableCheckpointError(
            f"{folder}: no readable checkpoint ({'; '.join(failed)}); to start over, delete {folder}"
            " or train with a new --model_dir")
    return None


def load_config(folder: str) -> Config:
    path = config_path(folder)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{folder}: no {CONFIG_FILE}; expected a training --model_dir or a packed model")
    return config_lib.load_json(path)


def restore_generator(model_dir: str, generator: keras.Model) -> str:
    """Set `generator`'s weights from the run's newest readable checkpoint; returns that checkpoint's path."""
    checkpoint = tf.train.Checkpoint(generator=generator)
    restored = restore_newest_readable(
        checkpoint_dir(model_dir), lambda prefix: checkpoint.restore(prefix).assert_existing_objects_matched().expect_partial())
    if restored is None:
        raise FileNotFoundError(f"{checkpoint_dir(model_dir)}: no checkpoint found; train first")
    _restored[os.path.abspath(model_dir)] = restored
    return restored


def weights_checkpoint(model_dir: str) -> str | None:
    """The checkpoint a run's generator was (or would be) loaded from: the one this process last
    restored from it, else the latest."""
    return _restored.get(os.path.abspath(model_dir)) or latest_checkpoint(model_dir)
