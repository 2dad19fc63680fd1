"""Tiny models in the training model_dir format, built in-process (much faster than a training run)."""

import os

from conftest import tiny_config

from tf_stacksr import config as config_lib
from tf_stacksr.training import train_lib


def tiny_model_dir(path, seed=0, **overrides) -> str:
    """A model_dir (config.json + checkpoint) of conftest's tiny 16->64 generator, untrained."""
    cfg = tiny_config(path, seed=seed, adv_weight=0.0, **overrides)
    trainer = train_lib.Trainer(cfg)
    os.makedirs(cfg.model_dir, exist_ok=True)
    config_lib.save_json(cfg, os.path.join(cfg.model_dir, "config.json"))
    trainer.save()
    return cfg.model_dir
