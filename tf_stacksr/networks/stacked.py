"""Assembles G1 and the upsampling stages into one generator, and one D per stage.

This is the only place that maps stages to resolutions (via `cfg.stage_sizes`): output k of
the generator and discriminator k both work at `cfg.stage_sizes[k]`.
"""

from __future__ import annotations

import keras
from keras import ops

from tf_stacksr.config import Config
from tf_stacksr.networks.discriminator import build_patchgan
from tf_stacksr.networks.layers import area_downscale, to_image
from tf_stacksr.networks.unet import unet_g1
from tf_stacksr.networks.upsampler import upsampling_stage


def stage_name(k: int) -> str:
    """'lr' for G1's output, then 'x2', 'x4', ... (the paper's B', B2, B4)."""
    return "lr" if k == 0 else f"x{2**k}"


def build_generator(cfg: Config) -> keras.Model:
    """A (blurry HR input, [-1, 1]) -> list of images, one per stage, LR first, HR last."""
    inputs = keras.Input((cfg.hr_size, cfg.hr_size, 3), name="blurry_hr")
    sizes = cfg.stage_sizes
    features = unet_g1(inputs, hr_size=cfg.hr_size, lr_size=cfg.lr_size, filters=cfg.unet_filters,
                       max_filters=cfg.unet_max_filters, norm=cfg.norm)
    base = area_downscale(inputs, cfg.hr_size // sizes[0], name="base_lr")
    image = to_image(features, base, residual=cfg.residual, name=f"stage_{stage_name(0)}")
    outputs = [image]
    for k in range(1, cfg.num_stages):
        features = upsampling_stage(features, image, filters=cfg.up_filters, res_blocks=cfg.blocks_per_stage[k - 1],
                                    res_convs=cfg.res_convs, kernel=cfg.res_kernel, name=f"g{2**k}")
        base = area_downscale(inputs, cfg.hr_size // sizes[k], name=f"base_{stage_name(k)}")
        image = to_image(features, base, residual=cfg.residual, name=f"stage_{stage_name(k)}")
        outputs.append(image)
    return keras.Model(inputs, outputs, name="stacked_generator")


def run_stages(generator: keras.Model, blurry, flip_ensemble: bool = False) -> list:
    """Input A ([-1, 1]) -> every stage's output as float32, LR first, HR last.

    One generator pass, or with `flip_ensemble` two: the face and its mirror image, whose output
    is mirrored back and averaged in (the self-ensemble of EDSR, Lim et al. 2017, restricted to
    the one symmetry faces have). The result is exactly mirror-equivariant and less noisy.
    """
    outputs = [ops.cast(o, "float32") for o in generator(blurry, training=False)]
    if flip_ensemble:
        mirrored = generator(ops.flip(blurry, axis=2), training=False)
        outputs = [(o + ops.flip(ops.cast(m, "float32"), axis=2)) / 2.0 for o, m in zip(outputs, mirrored)]
    return outputs


def build_discriminators(cfg: Config) -> list[keras.Model]:
    """D1, D2, D4, ...: one conditional PatchGAN per generator output."""
    return [build_patchgan(size, filters=cfg.disc_filters, norm=cfg.norm, name=f"d_{stage_name(k)}")
            for k, size in enumerate(cfg.stage_sizes)]
