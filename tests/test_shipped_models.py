"""The pretrained models shipped in tf_stacksr/weights: installed, small, loadable by name, and
better than bicubic on real faces of CelebA identities that training never saw."""

import os

import numpy as np
import pytest
from PIL import Image

from conftest import FIXTURES
from tf_stacksr import pretrained, upscalers
from tf_stacksr.data import align

# Fixture photos of the two CelebA *test* identities (../shared/data/celeba/test): never trained on.
TEST_PHOTOS = ("182935.jpg", "183959.jpg", "185157.jpg", "186102.jpg", "188037.jpg", "189552.jpg",
               "191076.jpg", "195815.jpg")


def psnr_y(a: np.ndarray, b: np.ndarray) -> float:
    """Mean PSNR of BT.601 luma (written out here, independent of tf_stacksr.metrics)."""
    to_y = lambda x: x.astype(np.float64) @ np.array([65.481, 128.553, 24.966]) / 255.0 + 16.0
    mse = ((to_y(a) - to_y(b)) ** 2).mean(axis=(1, 2))
    return float(np.mean(10.0 * np.log10(255.0**2 / mse)))


@pytest.fixture(scope="module")
def faces():
    """HR 64 px faces aligned like the training data, and their 16 px LR versions."""
    aligner = align.FaceAligner()
    hr = []
    for name in TEST_PHOTOS:
        with Image.open(FIXTURES / "celeba" / name) as image:
            rgb = np.asarray(image.convert("RGB"))
        crop, _ = aligner.align(rgb, aligner.detect(rgb)[0], 128)
        hr.append(np.asarray(Image.fromarray(crop).resize((64, 64), Image.BICUBIC)))
    hr = np.stack(hr)
    lr = np.stack([np.asarray(Image.fromarray(face).resize((16, 16), Image.BICUBIC)) for face in hr])
    return hr, lr


def test_both_models_ship_and_are_small():
    models = pretrained.shipped()
    for name in (pretrained.PSNR_MODEL, pretrained.GAN_MODEL):
        assert name in models, f"{name} missing from {pretrained.SHIPPED_DIR}"
        size = sum(os.path.getsize(os.path.join(models[name], f)) for f in os.listdir(models[name]))
        assert size < 5 * 2**20, (name, size)


@pytest.mark.parametrize("name, min_gain_db", [(pretrained.PSNR_MODEL, 3.0), (pretrained.GAN_MODEL, 2.0)])
def test_shipped_model_beats_bicubic_on_unseen_identities(faces, name, min_gain_db):
    hr, lr = faces
    bicubic = upscalers.resolve(upscalers.BICUBIC, 4, 64)(lr)
    ours = upscalers.resolve(name, 4, 64)(lr)  # by name, as `evaluate --methods=NAME` does
    gain = psnr_y(ours, hr) - psnr_y(bicubic, hr)
    assert gain >= min_gain_db, f"{name}: {gain:+.2f} dB over bicubic"
