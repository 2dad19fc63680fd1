"""Trained models as plain upscalers: uint8 LR faces in, uint8 SR faces out.

Used by evaluation, export and enhance, so that all three run the exact preprocessing the
model was trained with (`data.pairs`: uint8 -> [-1, 1] -> bicubic to HR size -> generator).
`load_upscaler` also opens exported SavedModels, whose graph holds that same preprocessing.
"""

from __future__ import annotations

import json
import os

import keras
import numpy as np
import tensorflow as tf

from tf_stacksr import config as config_lib
from tf_stacksr import pretrained, signatures
from tf_stacksr.config import Config
from tf_stacksr.data import pairs
from tf_stacksr.networks import build_generator


def load_generator(model_dir: str) -> tuple[Config, keras.Model]:
    """Rebuild the generator of a training model_dir (config.json + latest checkpoint) or a packed model."""
    if pretrained.is_packed(model_dir):
        return pretrained.load(model_dir)
    config_path = os.path.join(model_dir, "config.json")
    if not os.path.exists(config_path):
        raise FileNotFoundError(f"{model_dir}: no config.json; expected a training --model_dir")
    cfg = config_lib.load_json(config_path)
    latest = tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))
    if latest is None:
        raise FileNotFoundError(f"{model_dir}/checkpoints: no checkpoint found; train first")
    generator = build_generator(cfg)
    tf.train.Checkpoint(generator=generator).restore(latest).assert_existing_objects_matched().expect_partial()
    return cfg, generator


def interpolate_generators(psnr: keras.Model, gan: keras.Model, alpha: float) -> None:
    """Blend `gan`'s weights into `psnr` in place: w = (1 - alpha) * w_psnr + alpha * w_gan.

    Network interpolation (ESRGAN, Wang et al. 2018): one number trades the PSNR model's fidelity
    for the GAN model's detail, with no retraining.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"--alpha={alpha}: expected a blend factor in [0, 1] (0: PSNR model, 1: GAN model)")
    if len(psnr.weights) != len(gan.weights):
        raise ValueError(f"cannot interpolate: {len(psnr.weights)} vs {len(gan.weights)} weights")
    for a, b in zip(psnr.weights, gan.weights):
        if tuple(a.shape) != tuple(b.shape):
            raise ValueError(f"cannot interpolate: weight {a.path} {tuple(a.shape)} vs {b.path} {tuple(b.shape)}")
        a.assign((1.0 - alpha) * a.numpy() + alpha * b.numpy())


def load_blended(model_dir: str, gan_model_dir: str | None, alpha: float | None,
                 flip_ensemble: bool | None = None) -> tuple[Config, keras.Model]:
    """`model_dir`'s generator, blended with `gan_model_dir`'s by `alpha` when both are given.

    `flip_ensemble` overrides the model's own setting (Config.flip_ensemble) unless None.
    """
    cfg, generator = load_generator(model_dir)
    if flip_ensemble is not None:
        cfg = cfg.replace(flip_ensemble=flip_ensemble)
    if gan_model_dir is None:
        if alpha is not None:
            raise ValueError("--alpha needs a GAN model to blend in (--gan_model_dir)")
        return cfg, generator
    if alpha is None:
        raise ValueError("--gan_model_dir needs --alpha (0: --model_dir only, 1: --gan_model_dir only)")
    gan_cfg, gan = load_generator(gan_model_dir)
    diffs = [f"{k}: {getattr(cfg, k)!r} vs {getattr(gan_cfg, k)!r}"
             for k in config_lib.GENERATOR_FIELDS if getattr(cfg, k) != getattr(gan_cfg, k)]
    if diffs:
        raise ValueError(f"{model_dir} and {gan_model_dir} have different generator architectures ("
                         + "; ".join(diffs) + "): interpolation needs identical ones")
    interpolate_generators(generator, gan, alpha)
    return cfg, generator


def stages_from_uint8(generator: keras.Model, lr: tf.Tensor, hr_size: int, flip_ensemble: bool = False) -> list[tf.Tensor]:
    """uint8 LR batch -> every stage's output as uint8, LR first, HR last.

    One generator pass, or with `flip_ensemble` two: the face and its mirror image, whose output
    is mirrored back and averaged in (the self-ensemble of EDSR, Lim et al. 2017, restricted to
    the one symmetry faces have). The result is exactly mirror-equivariant and less noisy.
    """
    blurry = pairs.upscale(pairs.uint8_to_float(lr), hr_size)
    outputs = [tf.cast(o, tf.float32) for o in generator(blurry, training=False)]
    if flip_ensemble:
        mirrored = generator(tf.reverse(blurry, axis=[2]), training=False)
        outputs = [(o + tf.reverse(tf.cast(m, tf.float32), axis=[2])) / 2.0 for o, m in zip(outputs, mirrored)]
    return [pairs.float_to_uint8(o) for o in outputs]


def sr_from_uint8(generator: keras.Model, lr: tf.Tensor, hr_size: int, stage: int = -1,
                  flip_ensemble: bool = False) -> tf.Tensor:
    """uint8 LR batch -> uint8 SR batch at stage `stage` (default: the final, HR stage)."""
    return stages_from_uint8(generator, lr, hr_size, flip_ensemble)[stage]


class Upscaler:
    """Callable uint8 [N, h, w, 3] -> uint8 [N, h*scale, w*scale, 3] for one trained model."""

    def __init__(self, cfg: Config, generator: keras.Model, name: str):
        self.cfg, self.generator, self.name = cfg, generator, name
        self.scale, self.lr_size, self.hr_size = cfg.scale, cfg.lr_size, cfg.hr_size
        self._run = tf.function(lambda lr: sr_from_uint8(generator, lr, cfg.hr_size, flip_ensemble=cfg.flip_ensemble),
                                input_signature=[tf.TensorSpec([None, cfg.lr_size, cfg.lr_size, 3], tf.uint8)])

    def __call__(self, lr_images) -> np.ndarray:
        lr_images = np.asarray(lr_images)
        if lr_images.ndim != 4 or lr_images.shape[1:] != (self.lr_size, self.lr_size, 3) or lr_images.dtype != np.uint8:
            raise ValueError(f"{self.name}: expected uint8 LR faces of shape [N, {self.lr_size}, {self.lr_size}, 3],"
                             f" got {lr_images.dtype} {lr_images.shape}")
        return self._run(tf.convert_to_tensor(lr_images)).numpy()


class SavedModelUpscaler(Upscaler):
    """The same callable over an exported SavedModel's `serving_default` signature.

    Sizes come from the signature itself, so any export of this project loads without its
    config; `cfg` is the training Config from the export's metadata file (None if absent).
    """

    def __init__(self, path: str, name: str):
        self.name, self.generator = name, None
        self._loaded = tf.saved_model.load(path)  # keeps the signature's variables alive
        if signatures.UINT8_SIGNATURE not in self._loaded.signatures:
            raise ValueError(f"{path}: SavedModel has no {signatures.UINT8_SIGNATURE!r} signature;"
                             " expected one written by `python -m tf_stacksr.export`")
        signature = self._loaded.signatures[signatures.UINT8_SIGNATURE]
        in_spec = signature.structured_input_signature[1].get(signatures.UINT8_INPUT)
        out_spec = signature.structured_outputs.get(signatures.UINT8_OUTPUT)
        if in_spec is None or out_spec is None:
            raise ValueError(f"{path}: signature {signatures.UINT8_SIGNATURE!r} lacks input {signatures.UINT8_INPUT!r}"
                             f" or output {signatures.UINT8_OUTPUT!r}; expected an export of this project")
        self.lr_size, self.hr_size = int(in_spec.shape[1]), int(out_spec.shape[1])
        self.scale = self.hr_size // self.lr_size
        self.cfg = None
        metadata_path = os.path.join(path, signatures.METADATA_FILE)
        if os.path.exists(metadata_path):
            with open(metadata_path) as fh:
                self.cfg = config_lib.from_dict(json.load(fh)["config"])
        self._run = lambda lr: signature(**{signatures.UINT8_INPUT: lr})[signatures.UINT8_OUTPUT]


def is_saved_model(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "saved_model.pb"))


def load_upscaler(path: str) -> Upscaler:
    """An Upscaler from a training model_dir (config.json + checkpoints) or an exported SavedModel."""
    name = os.path.basename(os.path.normpath(path))
    if name.isdigit():  # a TF Serving version folder: models/stacksr/1 -> "stacksr/1"
        name = os.path.join(os.path.basename(os.path.dirname(os.path.normpath(path))), name)
    if is_saved_model(path):
        return SavedModelUpscaler(path, name=name)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{path}: no such folder; expected a training model_dir or an exported SavedModel")
    cfg, generator = load_generator(path)
    return Upscaler(cfg, generator, name=name)
