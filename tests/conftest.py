"""Shared test helpers: fixture paths and a tiny, fast configuration."""

import os
import pathlib

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
REPO = pathlib.Path(__file__).parent.parent


def tiny_config(model_dir, data_dir=FIXTURES / "celeba", **overrides):
    """A small 16->64 model that trains at tens of steps per second on 2 CPU cores."""
    from tf_stacksr.config import Config

    values = dict(data_dir=str(data_dir), model_dir=str(model_dir), hr_size=64, scale=4, res_blocks=1, res_convs=2,
                  unet_filters=8, unet_max_filters=32, up_filters=8, disc_filters=8, batch_size=4, train_steps=4,
                  log_every=2, sample_every=2, save_every=2, num_samples=2)
    values.update(overrides)
    return Config(**values)


@pytest.fixture
def fixtures_dir():
    return FIXTURES
