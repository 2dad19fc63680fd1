"""Shared test helpers: fixture paths, the one tiny configuration, and session-wide fixtures.

Two lanes:
  python -m pytest -q tests                  everything; CI runs this (.ci/run).
  python -m pytest -q -m "not slow" tests    a quick check while editing (~1.5 minutes on 2 CPU
                                             cores, vs ~6 for everything): leaves out the tests marked
                                             `slow` (training in subprocesses, multi-process strategies,
                                             anything over ~3 s) but keeps a fast test of every area.
Mark a new test `@pytest.mark.slow` when it trains in a subprocess or takes over ~3 s.
"""

import contextlib
import os
import pathlib
import threading

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
REPO = pathlib.Path(__file__).parent.parent

# The tiny 16->64 model: tens of steps per second on 2 CPU cores. Spelled here only.
TINY = dict(hr_size=64, scale=4, res_blocks=1, res_convs=2, unet_filters=8, unet_max_filters=32, up_filters=8,
            disc_filters=8, batch_size=4, num_samples=2)
# Its 8->32 variant, for runs that start several processes (strategies, the TF-free trainer).
TINY_32 = dict(TINY, hr_size=32, unet_max_filters=16, res_convs=1, num_samples=4)


def tiny_config(model_dir, data_dir=FIXTURES / "celeba", **overrides):
    """The tiny model as a Config: 4 training steps, logging, sampling and saving every 2."""
    from tf_stacksr.config import Config

    values = dict(TINY, data_dir=str(data_dir), model_dir=str(model_dir), train_steps=4, log_every=2, sample_every=2,
                  save_every=2)
    values.update(overrides)
    return Config(**values)


def as_flags(values: dict) -> list[str]:
    """Config values as command-line flags (`--name=value`)."""
    return [f"--{name}={value}" for name, value in values.items()]


def tiny_model_dir(path, seed=0, **overrides) -> str:
    """A model_dir (config.json + checkpoint) of the tiny generator, untrained, built in-process
    (much faster than a training run)."""
    from tf_stacksr import config as config_lib
    from tf_stacksr.training import train_lib

    cfg = tiny_config(path, seed=seed, adv_weight=0.0, **overrides)
    trainer = train_lib.Trainer(cfg)
    os.makedirs(cfg.model_dir, exist_ok=True)
    config_lib.save_json(cfg, os.path.join(cfg.model_dir, "config.json"))
    trainer.save()
    return cfg.model_dir


@contextlib.contextmanager
def fifo_released_after(fifo, seconds):
    """Opens `fifo` for writing after `seconds` and closes it, so code that blocks reading it gets
    EOF instead of hanging the test run."""
    done = threading.Event()

    def writer():
        if not done.wait(seconds):
            with open(fifo, "wb"):
                pass

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        if thread.is_alive():  # it may be blocked opening the fifo: give it a reader
            fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
            thread.join(5)
            os.close(fd)


@pytest.fixture
def fixtures_dir():
    return FIXTURES


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """`tiny_run(seed=0, **overrides)`: a tiny_model_dir built once per session for each set of
    arguments. Shared: read it, load it, export or pack it elsewhere, never write into it."""
    built = {}

    def get(seed=0, **overrides) -> str:
        key = (seed, tuple(sorted(overrides.items())))
        if key not in built:
            built[key] = tiny_model_dir(tmp_path_factory.mktemp("tiny_run") / "run", seed=seed, **overrides)
        return built[key]

    return get


@pytest.fixture(scope="session")
def aligner():
    """One dlib FaceAligner (HOG detector, default settings) for every test that detects faces."""
    from tf_stacksr.data import align

    return align.FaceAligner()


@pytest.fixture(scope="session")
def detected_face(aligner):
    """`detected_face(path)` -> (RGB uint8 photo, its largest face), detected once per session.
    The photo array is read-only: copy it before changing it."""
    import numpy as np
    from PIL import Image

    found = {}

    def get(path):
        key = os.path.abspath(path)
        if key not in found:
            with Image.open(key) as image:
                photo = np.asarray(image.convert("RGB"))
            photo.setflags(write=False)
            faces = aligner.detect(photo)
            assert faces, f"no face found in fixture {key}"
            found[key] = (photo, faces[0])
        return found[key]

    return get


@pytest.fixture(scope="session")
def prepared_celeba_128(tmp_path_factory):
    """The CelebA fixtures prepared at 128 px: 24 train and 8 test faces in 6 shards, split by
    identity. (output folder, manifest); read-only."""
    from tf_stacksr.data import prepare

    out = str(tmp_path_factory.mktemp("prepared_celeba_128"))
    manifest = prepare.prepare(str(FIXTURES / "celeba"), out,
                               prepare.PrepareOptions(size=128, split="identity", test_fraction=0.25, shard_size=6,
                                                      workers=1),
                               progress=False)
    return out, manifest
