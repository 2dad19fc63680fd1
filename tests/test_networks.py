"""Generator and discriminator shapes for every paper setting, and serialisability."""

import keras
import numpy as np
import pytest
from conftest import TINY

from tf_stacksr.config import Config
from tf_stacksr.networks import build_discriminators, build_generator, run_stages

SETTINGS = [(64, 4), (128, 4), (256, 4), (128, 8), (64, 2)]  # 16->64, 32->128, 64->256, 16->128, 32->64


def small(hr_size, scale, **kw):
    """The tiny model's widths, with two residual blocks, at any setting."""
    return Config(**{**TINY, "res_blocks": 2, **kw, "hr_size": hr_size, "scale": scale})


@pytest.mark.parametrize("hr_size,scale", SETTINGS)
def test_generator_returns_every_stage(hr_size, scale):
    cfg = small(hr_size, scale)
    outputs = build_generator(cfg)(np.zeros((2, hr_size, hr_size, 3), np.float32))
    assert len(outputs) == int(np.log2(scale)) + 1
    assert [tuple(o.shape) for o in outputs] == [(2, s, s, 3) for s in cfg.stage_sizes]
    assert cfg.stage_sizes[0] == hr_size // scale and cfg.stage_sizes[-1] == hr_size


@pytest.mark.parametrize("hr_size,scale", SETTINGS)
def test_one_patch_discriminator_per_stage(hr_size, scale):
    cfg = small(hr_size, scale)
    discs = build_discriminators(cfg)
    assert len(discs) == cfg.num_stages
    for disc, size in zip(discs, cfg.stage_sizes):
        x = np.zeros((2, size, size, 3), np.float32)
        logits = disc([x, x])
        assert logits.shape[0] == 2 and logits.shape[-1] == 1
        assert 1 < logits.shape[1] < size  # a grid of patches, not one score


@pytest.mark.parametrize("m,n", [(1, 1), (2, 2), (4, 2), (4, 4)])
def test_residual_structure_count(m, n):
    gen = build_generator(small(64, 4, res_blocks=m, res_convs=n))
    res_convs = [l for l in gen.layers if "_res" in l.name and "_conv" in l.name]
    assert len(res_convs) == 2 * m * n  # two upsampling stages at x4
    assert all(l.kernel_size == (1, 1) for l in res_convs)
    deconvs = [l for l in gen.layers if isinstance(l, keras.layers.Conv2DTranspose) and l.name.endswith("_deconv")]
    assert [l.strides for l in deconvs] == [(2, 2), (2, 2)]


def test_residual_structures_per_stage():
    """--stage_res_blocks gives each upsampling stage its own m, the x2 stage first."""
    cfg = small(128, 8, stage_res_blocks="3,1,2", res_convs=2)
    assert cfg.blocks_per_stage == (3, 1, 2)
    gen = build_generator(cfg)
    for stage, m in zip(("g2", "g4", "g8"), (3, 1, 2)):
        assert sorted(l.name for l in gen.layers if l.name.startswith(f"{stage}_res") and "_conv" in l.name) == \
            [f"{stage}_res{i}_conv{j}" for i in range(m) for j in range(2)]
    assert small(64, 4, res_blocks=3).blocks_per_stage == (3, 3)


def test_residual_outputs_start_near_area_downscaled_input():
    """With --residual, an untrained stage is exactly the input A box-downscaled (zero correction)."""
    cfg = small(64, 4)
    x = np.random.default_rng(0).uniform(-1, 1, (1, 64, 64, 3)).astype(np.float32)
    outputs = build_generator(cfg)(x)
    base = x.reshape(1, 16, 4, 16, 4, 3).mean(axis=(2, 4))
    np.testing.assert_allclose(outputs[0].numpy(), base, atol=1e-6)
    np.testing.assert_allclose(outputs[-1].numpy(), x, atol=1e-6)
    plain = build_generator(small(64, 4, residual=False))(x)
    assert np.abs(plain[0].numpy()).max() <= 1.0  # tanh outputs


def test_generator_serialises(tmp_path):
    cfg = small(64, 4, norm="batch")
    gen = build_generator(cfg)
    path = tmp_path / "g.keras"
    gen.save(path)
    again = keras.models.load_model(path)
    x = np.random.default_rng(1).uniform(-1, 1, (1, 64, 64, 3)).astype(np.float32)
    for a, b in zip(gen(x), again(x)):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)


def test_flip_ensemble_is_the_mean_of_both_passes_and_mirror_equivariant():
    """`run_stages` with the flip ensemble: (G(x) + mirror(G(mirror(x)))) / 2 at every stage, so a
    mirrored face gives exactly the mirrored output; without it, one plain pass."""
    generator = build_generator(small(64, 4))
    x = np.random.default_rng(0).uniform(-1, 1, (2, 64, 64, 3)).astype(np.float32)
    plain = [np.asarray(o) for o in generator(x)]
    mirrored = [np.asarray(o)[:, :, ::-1] for o in generator(x[:, :, ::-1].copy())]
    ensembled = [np.asarray(o) for o in run_stages(generator, x, flip_ensemble=True)]
    for a, b, both in zip(plain, mirrored, ensembled):
        np.testing.assert_allclose(both, (a + b) / 2, atol=1e-6)
    of_mirror = [np.asarray(o) for o in run_stages(generator, x[:, :, ::-1].copy(), flip_ensemble=True)]
    for both, flipped in zip(ensembled, of_mirror):
        np.testing.assert_allclose(flipped, both[:, :, ::-1], atol=1e-5)
    for a, single in zip(plain, run_stages(generator, x)):
        np.testing.assert_allclose(np.asarray(single), a, atol=1e-6)
