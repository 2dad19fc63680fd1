"""What each model form looks like on disk, and how to tell them apart (no TensorFlow needed).

    training run     <model_dir>/config.json + checkpoints/   (`runs`; also train/, samples/)
    packed model     <folder>/config.json + generator.npz     (`packed`; the shipped ones)
    SavedModel       <folder>/saved_model.pb + variables/     (`serving.export_lib`)

`config.json` is the Config the generator was built from (`config.save_json`).
"""

from __future__ import annotations

import os

CONFIG_FILE = "config.json"
CHECKPOINTS_DIR = "checkpoints"
WEIGHTS_FILE = "generator.npz"
SAVED_MODEL_FILE = "saved_model.pb"


def config_path(folder: str) -> str:
    return os.path.join(folder, CONFIG_FILE)


def checkpoint_dir(model_dir: str) -> str:
    return os.path.join(model_dir, CHECKPOINTS_DIR)


def is_packed(path: str) -> bool:
    return os.path.isfile(os.path.join(path, WEIGHTS_FILE)) and os.path.isfile(config_path(path))


def is_run(path: str) -> bool:
    return os.path.isfile(config_path(path)) and os.path.isdir(checkpoint_dir(path))


def is_saved_model(path: str) -> bool:
    return os.path.isfile(os.path.join(path, SAVED_MODEL_FILE))
