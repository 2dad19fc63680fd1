"""Packed models (int8 kernels + float32 scales) and the choice of shipped defaults."""

import os

import numpy as np
import pytest

from tf_stacksr import enhance, inference, pretrained
from tiny_models import tiny_model_dir


def test_quantize_error_is_within_half_a_step():
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(3, 3, 5, 7)).astype(np.float32) * rng.uniform(0.01, 2.0, size=7).astype(np.float32)
    kernel[..., 3] = 0.0  # an all-zero channel must not divide by zero
    q, scale = pretrained.quantize(kernel)
    assert q.dtype == np.int8 and scale.shape == (7,)
    peak = np.abs(kernel).reshape(-1, 7).max(axis=0)
    np.testing.assert_allclose(np.abs(q).reshape(-1, 7).max(axis=0)[peak > 0], 127)  # full int8 range used
    error = np.abs(q * scale - kernel)
    assert np.all(error <= scale / 2 + 1e-7)
    assert np.all(q[..., 3] == 0)


def test_pack_then_load_matches_the_float_model(tmp_path):
    model_dir = tiny_model_dir(tmp_path / "run", seed=3)
    cfg, generator = inference.load_generator(model_dir)
    packed = pretrained.pack(cfg, generator, str(tmp_path / "packed"), source={"model_dir": model_dir})
    assert pretrained.is_packed(packed) and not pretrained.is_packed(model_dir)
    loaded = inference.load_upscaler(packed)  # the generic loader takes packed folders
    original = inference.Upscaler(cfg, generator, name="float")
    lr = np.random.default_rng(1).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    diff = np.abs(loaded(lr).astype(int) - original(lr).astype(int))
    assert diff.max() <= 3 and diff.mean() < 0.5, (diff.max(), diff.mean())
    for weight, (_, restored) in zip(generator.weights, [(w.path, w) for w in loaded.generator.weights]):
        step = np.abs(weight.numpy()).max() / 127 if weight.numpy().ndim >= 2 else 0
        assert np.abs(weight.numpy() - restored.numpy()).max() <= step / 2 + 1e-6, weight.path


def test_load_names_the_file_when_weights_do_not_fit(tmp_path):
    small, wide = tiny_model_dir(tmp_path / "small"), tiny_model_dir(tmp_path / "wide", up_filters=4)
    packed = pretrained.pack(*inference.load_generator(small), str(tmp_path / "packed"))
    wide_cfg, wide_generator = inference.load_generator(wide)
    other = pretrained.pack(wide_cfg, wide_generator, str(tmp_path / "other"))
    os.replace(os.path.join(other, pretrained.WEIGHTS_FILE), os.path.join(packed, pretrained.WEIGHTS_FILE))
    with pytest.raises(ValueError, match=r"packed/generator.npz: .* has shape"):
        pretrained.load(packed)


def test_choose_defaults_and_names(tmp_path, monkeypatch):
    monkeypatch.setattr(pretrained, "SHIPPED_DIR", str(tmp_path))
    for name in (pretrained.PSNR_MODEL, pretrained.GAN_MODEL):
        pretrained.pack(*inference.load_generator(tiny_model_dir(tmp_path / "runs" / name)), str(tmp_path / name))
    shipped = pretrained.shipped()
    assert set(shipped) == {pretrained.PSNR_MODEL, pretrained.GAN_MODEL}
    assert pretrained.choose(None, None, None) == (shipped[pretrained.DEFAULT_MODEL], None)
    assert pretrained.choose(None, None, 0.5) == (shipped[pretrained.PSNR_MODEL], shipped[pretrained.GAN_MODEL])
    run = str(tmp_path / "runs" / pretrained.PSNR_MODEL)
    assert pretrained.choose(run, pretrained.GAN_MODEL, 0.5) == (run, shipped[pretrained.GAN_MODEL])
    with pytest.raises(FileNotFoundError, match="'nope' is neither an existing model path nor a shipped model"):
        pretrained.choose("nope", None, None)


def test_enhance_alpha_blends_between_the_two_models(tmp_path):
    psnr_dir = tiny_model_dir(tmp_path / "psnr", seed=1)
    cfg, gan = inference.load_generator(tiny_model_dir(tmp_path / "gan_run", seed=2))
    rng = np.random.default_rng(3)
    for weight in gan.weights:  # untrained residual models all output bicubic: make this one differ
        weight.assign(weight.numpy() + rng.normal(0, 0.1, weight.shape).astype(np.float32))
    gan_dir = pretrained.pack(cfg, gan, str(tmp_path / "gan"))
    lr = np.random.default_rng(2).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    psnr, gan = inference.load_upscaler(psnr_dir)(lr), inference.load_upscaler(gan_dir)(lr)
    assert np.abs(psnr.astype(int) - gan.astype(int)).max() > 10
    np.testing.assert_array_equal(enhance.load_upscaler(psnr_dir, gan_dir, 0.0)(lr), psnr)
    assert np.abs(enhance.load_upscaler(psnr_dir, gan_dir, 1.0)(lr).astype(int) - gan.astype(int)).max() <= 1
    half = enhance.load_upscaler(psnr_dir, gan_dir, 0.5)(lr).astype(int)
    assert 0 < np.abs(half - psnr).mean() and 0 < np.abs(half - gan).mean()
    with pytest.raises(SystemExit, match="--gan-model needs --alpha"):
        enhance.load_upscaler(psnr_dir, gan_dir, None)
