"""Tiny models in the training model_dir format, built in-process (faster than a training run)."""

import os

from tf_stacksr import config as config_lib
from tf_stacksr import train_lib


def tiny_model_dir(path, seed=0, **changes) -> str:
    """A trained-format model_dir (config.json + checkpoint) of a tiny, untrained generator."""
    options = dict(hr_size=64, scale=4, unet_filters=8, unet_max_filters=16, up_filters=8, disc_filters=8,
                   res_blocks=1, res_convs=1, batch_size=2, adv_weight=0.0)
    cfg = config_lib.Config(model_dir=str(path), seed=seed, **{**options, **changes})
    trainer = train_lib.Trainer(cfg)
    os.makedirs(cfg.model_dir, exist_ok=True)
    config_lib.save_json(cfg, os.path.join(cfg.model_dir, "config.json"))
    trainer.save()
    return cfg.model_dir
