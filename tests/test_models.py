"""The one loader (`tf_stacksr.models`): packed models (int8 kernels + float32 scales), runs,
SavedModels, shipped names, and what --alpha means."""

import os

import numpy as np
import pytest
from conftest import tiny_model_dir
from test_train_lib import truncate, two_checkpoints

from tf_stacksr import enhance, models
from tf_stacksr.models import layout, packed, runs, zoo
from tf_stacksr.serving import export_lib
from tf_stacksr.serving.upscalers import GeneratorUpscaler, SavedModelUpscaler


def test_quantize_error_is_within_half_a_step():
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(3, 3, 5, 7)).astype(np.float32) * rng.uniform(0.01, 2.0, size=7).astype(np.float32)
    kernel[..., 3] = 0.0  # an all-zero channel must not divide by zero
    q, scale = packed.quantize(kernel)
    assert q.dtype == np.int8 and scale.shape == (7,)
    peak = np.abs(kernel).reshape(-1, 7).max(axis=0)
    np.testing.assert_allclose(np.abs(q).reshape(-1, 7).max(axis=0)[peak > 0], 127)  # full int8 range used
    error = np.abs(q * scale - kernel)
    assert np.all(error <= scale / 2 + 1e-7)
    assert np.all(q[..., 3] == 0)


def test_pack_then_load_matches_the_float_model(tiny_run, tmp_path):
    model_dir = tiny_run(seed=3)
    cfg, generator = models.load_generator(model_dir)
    folder = packed.pack(cfg, generator, str(tmp_path / "packed"), source={"model_dir": model_dir})
    assert layout.is_packed(folder) and not layout.is_packed(model_dir) and layout.is_run(model_dir)
    loaded = models.load(folder)  # the one loader takes packed folders
    original = GeneratorUpscaler(cfg, generator, name="float")
    lr = np.random.default_rng(1).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    diff = np.abs(loaded(lr).astype(int) - original(lr).astype(int))
    assert diff.max() <= 3 and diff.mean() < 0.5, (diff.max(), diff.mean())
    for weight, restored in zip(generator.weights, loaded.generator.weights):
        step = np.abs(weight.numpy()).max() / 127 if weight.numpy().ndim >= 2 else 0
        assert np.abs(weight.numpy() - restored.numpy()).max() <= step / 2 + 1e-6, weight.path


def test_load_names_the_file_when_weights_do_not_fit(tiny_run, tmp_path):
    small, wide = tiny_run(), tiny_run(up_filters=4)
    folder = packed.pack(*models.load_generator(small), str(tmp_path / "packed"))
    other = packed.pack(*models.load_generator(wide), str(tmp_path / "other"))
    os.replace(os.path.join(other, layout.WEIGHTS_FILE), os.path.join(folder, layout.WEIGHTS_FILE))
    with pytest.raises(ValueError, match=r"packed/generator.npz: .* has shape"):
        packed.load(folder)


@pytest.mark.slow
def test_every_model_form_loads_through_one_function(tiny_run, tmp_path):
    run = tiny_run(seed=4)
    folder = packed.pack(*models.load_generator(run), str(tmp_path / "packed"))
    export_lib.export(run, str(tmp_path / "serving" / "1"))
    lr = np.random.default_rng(0).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    from_run, from_packed = models.load(run), models.load(folder)
    from_saved = models.load(str(tmp_path / "serving" / "1"))
    assert isinstance(from_saved, SavedModelUpscaler) and from_saved.name == os.path.join("serving", "1")
    assert np.abs(from_saved(lr).astype(int) - from_run(lr).astype(int)).max() <= 1
    assert np.abs(from_packed(lr).astype(int) - from_run(lr).astype(int)).max() <= 3
    with pytest.raises(ValueError, match="exported SavedModel: its blend, flip ensemble and input size were fixed"):
        models.load(str(tmp_path / "serving" / "1"), flip_ensemble=True)
    with pytest.raises(FileNotFoundError, match="no config.json"):
        models.load(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="'nope' is neither an existing model path nor a shipped model"):
        models.load("nope")


def test_choose_defaults_and_names(tmp_path, monkeypatch):
    monkeypatch.setattr(zoo, "SHIPPED_DIR", str(tmp_path))
    for name in (zoo.PSNR_MODEL, zoo.GAN_MODEL):
        packed.pack(*models.load_generator(tiny_model_dir(tmp_path / "runs" / name)), str(tmp_path / name))
    shipped = zoo.shipped()
    assert set(shipped) == {zoo.PSNR_MODEL, zoo.GAN_MODEL}
    assert zoo.entries()[zoo.PSNR_MODEL].scale == 4 and zoo.entries()[zoo.PSNR_MODEL].lr_size == 16
    assert models.choose(None, None, None) == (shipped[zoo.DEFAULT_MODEL], None)
    assert models.choose(None, None, 0.5) == (shipped[zoo.PSNR_MODEL], shipped[zoo.GAN_MODEL])
    run = str(tmp_path / "runs" / zoo.PSNR_MODEL)
    assert models.choose(run, zoo.GAN_MODEL, 0.5) == (run, shipped[zoo.GAN_MODEL])
    with pytest.raises(ValueError, match="--alpha needs a GAN model"):
        models.choose(run, None, 0.5)
    with pytest.raises(FileNotFoundError, match="'nope' is neither an existing model path nor a shipped model"):
        models.choose("nope", None, None)


@pytest.mark.slow
def test_enhance_alpha_blends_between_the_two_models(tiny_run, tmp_path):
    psnr_dir = tiny_run(seed=1)
    cfg, gan = models.load_generator(tiny_run(seed=2))
    rng = np.random.default_rng(3)
    for weight in gan.weights:  # untrained residual models all output bicubic: make this one differ
        weight.assign(weight.numpy() + rng.normal(0, 0.1, weight.shape).astype(np.float32))
    gan_dir = packed.pack(cfg, gan, str(tmp_path / "gan"))
    lr = np.random.default_rng(2).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    psnr, gan = models.load(psnr_dir)(lr), models.load(gan_dir)(lr)
    assert np.abs(psnr.astype(int) - gan.astype(int)).max() > 10
    np.testing.assert_array_equal(enhance.load_upscaler(psnr_dir, gan_dir, 0.0)(lr), psnr)
    assert np.abs(enhance.load_upscaler(psnr_dir, gan_dir, 1.0)(lr).astype(int) - gan.astype(int)).max() <= 1
    half = enhance.load_upscaler(psnr_dir, gan_dir, 0.5)(lr).astype(int)
    assert 0 < np.abs(half - psnr).mean() and 0 < np.abs(half - gan).mean()
    with pytest.raises(SystemExit, match="needs --alpha"):
        enhance.load_upscaler(psnr_dir, gan_dir, None)


def test_run_loads_from_the_newest_readable_checkpoint(tmp_path, caplog):
    """Evaluation and export fall back past a truncated latest checkpoint as training does."""
    model_dir = str(tmp_path / "run")
    trainer = two_checkpoints(model_dir)
    truncate(model_dir, 4)
    with caplog.at_level("WARNING"):
        _, generator = models.load_generator(model_dir)
    assert "ckpt-4" in caplog.text and "cannot be read" in caplog.text
    for saved, loaded in zip(trainer.generator.weights, generator.weights):
        np.testing.assert_array_equal(saved.numpy(), loaded.numpy())
    assert models.weights_file(model_dir).endswith("ckpt-2")  # what export and pack_model record
    truncate(model_dir, 2)
    with pytest.raises(runs.UnreadableCheckpointError, match=r"checkpoints: no readable checkpoint .*to start over"):
        models.load(model_dir)
    with pytest.raises(FileNotFoundError, match="no readable checkpoint"):  # what the commands catch
        models.load_generator(model_dir)
