"""`load`: any model name or path -> an upscaler; `load_generator`: -> (Config, Keras generator).

A model is named by one of:
- a shipped model's name (`zoo`), e.g. `celeba_16to64_gan`;
- a packed model folder (`packed`: config.json + generator.npz);
- a training run's --model_dir (config.json + checkpoints/, its latest checkpoint);
- an exported SavedModel folder (`load` only; its weights are fixed at export).

What `alpha` means is decided here alone: network interpolation (ESRGAN, Wang et al. 2018)
w = (1 - alpha) * w_model + alpha * w_gan of two generators of one architecture, trading the
PSNR model's fidelity for the GAN model's detail with no retraining. With no model named, the
shipped default runs; with only `alpha` given, the shipped PSNR model blended with the shipped
GAN model.

`lr_size` runs a generator at another LR input size than it was trained at: every layer is a
convolution (instance norm included), so the same weights apply to any LR side that is a
multiple of 4 (`Config.validate`). `enhance` uses it for faces between or above the models' own
input sizes (`apps.routing`).
"""

from __future__ import annotations

import os

import keras
import numpy as np

from tf_stacksr import config as config_lib
from tf_stacksr.config import Config
from tf_stacksr.models import layout, packed, runs, zoo
from tf_stacksr.networks import build_generator, upsampler
from tf_stacksr.serving.upscalers import GeneratorUpscaler, SavedModelUpscaler


def _generator_of(path: str) -> tuple[Config, keras.Model]:
    if layout.is_packed(path):
        return packed.load(path)
    if layout.is_saved_model(path):
        raise ValueError(f"{path} is an exported SavedModel: it runs as is (tf_stacksr.models.load), but its Keras"
                         " generator cannot be rebuilt; expected a training model_dir or a packed model")
    cfg = runs.load_config(path)
    generator = build_generator(cfg)
    runs.restore_generator(path, generator)
    return cfg, generator


def check_init_source(cfg: Config, path: str) -> Config:
    """The Config of the generator in `path`; ValueError unless a run of `cfg` can start from it
    (`assign_generator`): the same generator but for the number of residual structures per stage."""
    source = runs.load_config(path)
    diffs = [f"--{k}={getattr(cfg, k)!r} (it has {getattr(source, k)!r})" for k in config_lib.GENERATOR_FIELDS
             if k not in ("res_blocks", "stage_res_blocks") and getattr(cfg, k) != getattr(source, k)]
    if diffs:
        raise ValueError(f"--init_from={path}: another generator architecture: " + "; ".join(diffs))
    return source


def assign_generator(source: str, generator: keras.Model, cfg: Config) -> str:
    """Set `generator`'s weights (built from `cfg`) from `source` (shipped name, packed model or run).

    Used to start training from another model (`--init_from`); returns the source's folder. The
    architectures must match (`check_init_source`), except for the residual structures per stage
    (--res_blocks, --stage_res_blocks). Each structure adds a correction to its input (z + F(z)),
    so a stage with fewer structures than the source's takes its first ones and still works, and
    a stage with more starts its extra ones as identities (the last conv of F zeroed): the run
    starts from a network close to, or exactly computing, the source's, and only has to adapt,
    e.g. distilled from the source (--teacher).
    """
    path = zoo.resolve(source)
    if check_init_source(cfg, path).blocks_per_stage == cfg.blocks_per_stage:
        if layout.is_packed(path):
            packed.assign_weights(path, generator)
        else:
            runs.restore_generator(path, generator)
        return path
    source_layers = {layer.name: layer for layer in _generator_of(path)[1].layers}
    for layer in generator.layers:
        if not layer.weights:
            continue
        if layer.name in source_layers:
            layer.set_weights(source_layers[layer.name].get_weights())
        elif upsampler.is_residual_output(layer.name, cfg.res_convs):
            layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
        elif not upsampler.is_residual_conv(layer.name):
            raise ValueError(f"--init_from={path}: its generator has no layer {layer.name!r}")
    return path


def weights_file(path: str) -> str:
    """The file a model's weights are read from: a packed model's npz or a run's checkpoint (the
    one its generator was loaded from: the newest that reads)."""
    if layout.is_packed(path):
        return os.path.abspath(os.path.join(path, layout.WEIGHTS_FILE))
    return runs.weights_checkpoint(path)


def interpolate_generators(base: keras.Model, gan: keras.Model, alpha: float) -> None:
    """Blend `gan`'s weights into `base` in place: w = (1 - alpha) * w_base + alpha * w_gan."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"--alpha={alpha}: expected a blend factor in [0, 1] (0: PSNR model, 1: GAN model)")
    if len(base.weights) != len(gan.weights):
        raise ValueError(f"cannot interpolate: {len(base.weights)} vs {len(gan.weights)} weights")
    for a, b in zip(base.weights, gan.weights):
        if tuple(a.shape) != tuple(b.shape):
            raise ValueError(f"cannot interpolate: weight {a.path} {tuple(a.shape)} vs {b.path} {tuple(b.shape)}")
        a.assign((1.0 - alpha) * a.numpy() + alpha * b.numpy())


def choose(model: str | None, gan_model: str | None, alpha: float | None) -> tuple[str, str | None]:
    """The folders to load, shipped defaults filled in; errors name the option that is off."""
    if gan_model is not None and alpha is None:
        raise ValueError("a GAN model to blend in needs --alpha (0: the model only, 1: the GAN model only)")
    if model is None:
        model = zoo.DEFAULT_MODEL if alpha is None else zoo.PSNR_MODEL
        if alpha is not None and gan_model is None:
            gan_model = zoo.DEFAULT_GAN_MODEL
    if alpha is not None and gan_model is None:
        raise ValueError(f"--alpha needs a GAN model to blend into {model} (--gan_model)")
    return zoo.resolve(model), (zoo.resolve(gan_model) if gan_model is not None else None)


def at_lr_size(cfg: Config, generator: keras.Model, lr_size: int) -> tuple[Config, keras.Model]:
    """The same generator built for LR inputs of `lr_size` px, with the same weights."""
    if lr_size == cfg.lr_size:
        return cfg, generator
    try:
        resized = cfg.replace(hr_size=lr_size * cfg.scale)  # validated on creation
    except ValueError as err:
        raise ValueError(f"lr_size={lr_size}: expected a multiple of 4 ({err})") from None
    rebuilt = build_generator(resized)
    rebuilt.set_weights(generator.get_weights())
    return resized, rebuilt


def load_generator(model: str | None = None, *, gan_model: str | None = None, alpha: float | None = None,
                   flip_ensemble: bool | None = None, lr_size: int | None = None) -> tuple[Config, keras.Model]:
    """The Keras generator of `model` (blended with `gan_model` by `alpha`), and its Config.

    `flip_ensemble` overrides the model's own setting (Config.flip_ensemble) unless None;
    `lr_size` builds it for other LR inputs (see the module doc) unless None.
    """
    path, gan_path = choose(model, gan_model, alpha)
    cfg, generator = _generator_of(path)
    if flip_ensemble is not None:
        cfg = cfg.replace(flip_ensemble=flip_ensemble)
    if gan_path is not None:
        gan_cfg, gan = _generator_of(gan_path)
        diffs = [f"{k}: {getattr(cfg, k)!r} vs {getattr(gan_cfg, k)!r}"
                 for k in config_lib.GENERATOR_FIELDS if getattr(cfg, k) != getattr(gan_cfg, k)]
        if diffs:
            raise ValueError(f"{path} and {gan_path} have different generator architectures ("
                             + "; ".join(diffs) + "): interpolation needs identical ones")
        interpolate_generators(generator, gan, alpha)
    return at_lr_size(cfg, generator, lr_size) if lr_size else (cfg, generator)


def display_name(path: str) -> str:
    """A model's name in reports: its folder's name (`models/stacksr/1` -> `stacksr/1`)."""
    name = os.path.basename(os.path.normpath(path))
    if name.isdigit():  # a TF Serving version folder
        name = os.path.join(os.path.basename(os.path.dirname(os.path.normpath(path))), name)
    return name


def load(model: str | None = None, *, gan_model: str | None = None, alpha: float | None = None,
         flip_ensemble: bool | None = None, lr_size: int | None = None) -> GeneratorUpscaler:
    """An upscaler (uint8 LR faces -> uint8 SR faces) of any model form; see the module doc."""
    path = zoo.resolve(model) if model is not None else None
    if path is not None and layout.is_saved_model(path):
        if alpha is not None or gan_model is not None or flip_ensemble is not None or lr_size is not None:
            raise ValueError(f"{path} is an exported SavedModel: its blend, flip ensemble and input size were fixed"
                             " at export; --alpha, a GAN model, --flip_ensemble and another LR size need a training"
                             " run or packed model")
        return SavedModelUpscaler(path, name=display_name(path))
    if path is not None and not os.path.isdir(path):
        raise FileNotFoundError(f"{path}: not a folder; expected a training model_dir, packed model or SavedModel")
    cfg, generator = load_generator(path, gan_model=gan_model, alpha=alpha, flip_ensemble=flip_ensemble,
                                    lr_size=lr_size)
    name = display_name(path or (zoo.DEFAULT_MODEL if alpha is None else zoo.PSNR_MODEL))
    return GeneratorUpscaler(cfg, generator, name=name + (f"+{alpha:g}*gan" if alpha is not None else ""))
