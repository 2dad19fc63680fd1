"""The pretrained models shipped in tf_stacksr/weights: installed, small, loadable by name, and
better than bicubic on real faces of CelebA identities that training never saw."""

import os

import numpy as np
import pytest
from conftest import FIXTURES
from PIL import Image

from tf_stacksr import models
from tf_stacksr.data import align
from tf_stacksr.evaluation import methods
from tf_stacksr.models import zoo

# Fixture photos of the two CelebA *test* identities (../shared/data/celeba/test): never trained on.
TEST_PHOTOS = ("182935.jpg", "183959.jpg", "185157.jpg", "186102.jpg", "188037.jpg", "189552.jpg",
               "191076.jpg", "195815.jpg")


def psnr_y(a: np.ndarray, b: np.ndarray) -> float:
    """Mean PSNR of BT.601 luma (written out here, independent of tf_stacksr.metrics)."""
    to_y = lambda x: x.astype(np.float64) @ np.array([65.481, 128.553, 24.966]) / 255.0 + 16.0
    mse = ((to_y(a) - to_y(b)) ** 2).mean(axis=(1, 2))
    return float(np.mean(10.0 * np.log10(255.0**2 / mse)))


def aligned(detected_face, paths, size: int) -> list[np.ndarray]:
    """Faces aligned as `prepare --size=SIZE` does."""
    return [align.align_face(photo, face.landmarks, size)[0] for photo, face in map(detected_face, paths)]


@pytest.fixture(scope="module")
def aligned_faces(detected_face):
    """128 px faces aligned like the training data (`prepare --size=128`)."""
    return aligned(detected_face, [FIXTURES / "celeba" / name for name in TEST_PHOTOS], 128)


def resized(faces, size: int) -> np.ndarray:
    return np.stack([np.asarray(Image.fromarray(face).resize((size, size), Image.BICUBIC)) for face in faces])


def test_models_ship_and_are_small():
    models = zoo.shipped()
    for name in (zoo.PSNR_MODEL, zoo.GAN_MODEL, "celeba_32to128_psnr", "ffhq_celeba_64to256_psnr"):
        assert name in models, f"{name} missing from {zoo.SHIPPED_DIR}"
        size = sum(os.path.getsize(os.path.join(models[name], f)) for f in os.listdir(models[name]))
        assert size < 5 * 2**20, (name, size)


@pytest.mark.parametrize("name, hr_size, min_gain_db",
                         [(zoo.PSNR_MODEL, 64, 3.0), (zoo.GAN_MODEL, 64, 2.0), ("celeba_16to64_fast", 64, 3.0),
                          ("celeba_32to128_psnr", 128, 3.0)])
def test_shipped_model_beats_bicubic_on_unseen_identities(aligned_faces, name, hr_size, min_gain_db):
    hr = resized(aligned_faces, hr_size)  # HR as training reads the 128 px shards
    lr = resized(hr, hr_size // 4)
    bicubic = methods.resolve(methods.BICUBIC, 4, hr_size)(lr)
    ours = methods.resolve(name, 4, hr_size)(lr)  # by name, as `evaluate --methods=NAME` does
    gain = psnr_y(ours, hr) - psnr_y(bicubic, hr)
    assert gain >= min_gain_db, f"{name}: {gain:+.2f} dB over bicubic"


@pytest.mark.slow
def test_flip_ensemble_is_more_faithful_than_one_pass(aligned_faces):
    """The PSNR model with its flip ensemble on beats the same weights run once, on unseen faces."""
    hr = resized(aligned_faces, 64)
    lr = resized(hr, 16)
    scores = {}
    for flip in (False, True):
        scores[flip] = psnr_y(models.load(zoo.PSNR_MODEL, flip_ensemble=flip)(lr), hr)
    assert scores[True] > scores[False] + 0.05, scores


@pytest.mark.slow
def test_a_model_run_at_a_larger_lr_size_still_beats_bicubic(aligned_faces):
    """`enhance` runs the largest model at the size of faces larger than its input (`models.load(...,
    lr_size=...)`, same weights); here the 16->64 model on faces 1.25x and 1.5x the size it learnt."""
    for lr_size in (20, 24):
        hr = resized(aligned_faces, 4 * lr_size)
        lr = resized(hr, lr_size)
        upscaler = models.load(zoo.PSNR_MODEL, lr_size=lr_size)
        assert upscaler.lr_size == lr_size and upscaler.hr_size == 4 * lr_size
        gain = psnr_y(upscaler(lr), hr) - psnr_y(methods.resolve(methods.BICUBIC, 4, 4 * lr_size)(lr), hr)
        assert gain >= 1.0, f"at {lr_size} px in: {gain:+.2f} dB over bicubic"
    with pytest.raises(ValueError, match="lr_size=22: expected a multiple of 4"):
        models.load(zoo.PSNR_MODEL, lr_size=22)


def test_shipped_256_model_beats_bicubic_on_native_256_faces(detected_face):
    """The 64->256 model on two FFHQ-style faces (native 256 px) of its test split, aligned as `prepare --size=256` does."""
    hr = np.stack(aligned(detected_face, sorted((FIXTURES / "ffhq_test").glob("*.jpg")), 256))
    lr = resized(hr, 64)
    bicubic = methods.resolve(methods.BICUBIC, 4, 256)(lr)
    ours = methods.resolve("ffhq_celeba_64to256_psnr", 4, 256)(lr)
    gain = psnr_y(ours, hr) - psnr_y(bicubic, hr)
    assert gain >= 1.0, f"ffhq_celeba_64to256_psnr: {gain:+.2f} dB over bicubic"
