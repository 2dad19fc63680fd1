"""PSNR/SSIM equal skimage.metrics (the reference SR papers' numbers are usually made with) on
real degraded faces and on noise, on RGB and on BT.601 Y (skimage.color.rgb2ycbcr)."""

import numpy as np
import pytest
import skimage.color
import skimage.metrics
from conftest import FIXTURES

from tf_stacksr.data import pairs, pipeline
from tf_stacksr.evaluation import methods
from tf_stacksr.metrics import image


def _skimage_ssim(a, b, **kw):
    return skimage.metrics.structural_similarity(
        a, b, data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, **kw)


@pytest.fixture(scope="module")
def face_pairs():
    """(bicubic x4 SR, HR) uint8 pairs of six real fixture faces at 64 px, plus a noisy and a shifted variant."""
    paths = pipeline.list_images(str(FIXTURES / "celeba"))[:6]
    hr = np.stack([pairs.float_to_uint8(pipeline.load_face(p, 64)).numpy() for p in paths])
    lr = pairs.float_to_uint8(pairs.downscale(pairs.uint8_to_float(hr), 16)).numpy()
    sr = methods.Bicubic(4)(lr)
    noisy = np.clip(hr + np.random.default_rng(0).normal(0, 12, hr.shape), 0, 255).astype(np.uint8)
    shifted = np.roll(hr, 2, axis=2)
    return [(sr, hr), (noisy, hr), (shifted, hr)]


def test_rgb_psnr_and_ssim_equal_skimage(face_pairs):
    for restored, reference in face_pairs:
        scores = image.image_metrics(restored, reference)
        for k in range(len(reference)):
            assert scores["psnr_rgb"][k] == pytest.approx(
                skimage.metrics.peak_signal_noise_ratio(reference[k], restored[k], data_range=255), abs=1e-9)
            assert scores["ssim_rgb"][k] == pytest.approx(_skimage_ssim(reference[k], restored[k], channel_axis=-1), abs=1e-9)


def test_y_channel_psnr_and_ssim_equal_skimage_on_rgb2ycbcr(face_pairs):
    for restored, reference in face_pairs:
        scores = image.image_metrics(restored, reference)
        for k in range(len(reference)):
            y_ref = skimage.color.rgb2ycbcr(reference[k])[..., 0]
            y_res = skimage.color.rgb2ycbcr(restored[k])[..., 0]
            assert scores["psnr_y"][k] == pytest.approx(
                skimage.metrics.peak_signal_noise_ratio(y_ref, y_res, data_range=255), abs=1e-9)
            assert scores["ssim_y"][k] == pytest.approx(_skimage_ssim(y_ref, y_res), abs=1e-9)


def test_identical_images_score_infinite_psnr_and_ssim_one(face_pairs):
    _, hr = face_pairs[0]
    scores = image.image_metrics(hr, hr)
    assert np.all(np.isinf(scores["psnr_rgb"])) and np.allclose(scores["ssim_y"], 1.0)


def test_y_channel_is_bt601_studio_swing():
    y = image.rgb_to_y(np.array([[[[0, 0, 0], [255, 255, 255], [255, 0, 0]]]], np.uint8))[0, 0, :, 0]
    np.testing.assert_allclose(y, [16.0, 235.0, 16.0 + 65.481], atol=1e-9)


def test_mismatched_shapes_and_tiny_images_are_rejected():
    with pytest.raises(ValueError, match="equal shape"):
        image.image_metrics(np.zeros((1, 16, 16, 3), np.uint8), np.zeros((1, 32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="at least 11x11"):
        image.ssim(np.zeros((1, 8, 8, 3)), np.zeros((1, 8, 8, 3)))
