"""Trained generator -> SavedModel for TensorFlow Serving (contract in `tf_stacksr.serving.signatures`).

Everything a client would otherwise have to reproduce runs inside the graph: uint8 -> [-1, 1],
the bicubic pre-upscale to the HR size, the generator, rounding and clipping back to uint8
(the same `upscalers.stages_from_uint8` the Python upscaler and evaluation use), and, for the
`encoded` signature, image decoding and PNG encoding.

TF Serving checks neither shapes nor batch structure of a request, so each signature checks its
input at run time with `tf.debugging.Assert` and a message naming the input and the expected
shape; such a request fails with that message instead of deep inside a convolution.

The model is written to a hidden temporary folder next to the target, smoke-tested, and only
then renamed into place: TF Serving watches the base folder for numeric version folders and
must never see a half-written one.

With a GAN model and alpha, the export holds the network interpolation of the two
(`tf_stacksr.models.interpolate_generators`).
"""

from __future__ import annotations

import json
import os
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tf_stacksr import files, models
from tf_stacksr.config import Config
from tf_stacksr.networks.stacked import stage_name
from tf_stacksr.serving import signatures
from tf_stacksr.serving.upscalers import stages_from_uint8


def _checked(tensor: tf.Tensor, expected: list[int | None], message: str) -> tf.Tensor:
    """`tensor` after a run-time check that its shape matches `expected` (None: any size).

    Computed from the run-time shape (`tf.shape`), never the traced one, so the check stays in
    the graph and also catches requests whose rank differs from the signature's.
    """
    rank = len(expected)
    shape = tf.shape(tensor)
    # Pad with -1 so a lower rank shows as a -1 among the first `rank` sizes and a higher one
    # as a size >= 0 in place `rank` (tf.rank would be folded to the traced rank).
    padded = tf.concat([shape, tf.fill([rank + 1], -1)], axis=0)[: rank + 1]
    ok = tf.logical_and(tf.equal(padded[rank], -1), tf.reduce_all(padded[:rank] >= 0))
    fixed = [i for i, size in enumerate(expected) if size is not None]
    if fixed:
        ok = tf.logical_and(ok, tf.reduce_all(tf.equal(tf.gather(padded, fixed), [expected[i] for i in fixed])))
    check = tf.debugging.Assert(ok, [message + "; got shape", shape], summarize=rank + 2)
    with tf.control_dependencies([check]):
        checked = tf.identity(tensor)
    checked.set_shape(expected)  # static only: a run-time EnsureShape could fire before the Assert
    return checked


def _uint8_spec(size: int) -> tf.TensorSpec:
    return tf.TensorSpec([None, size, size, 3], tf.uint8, name=signatures.UINT8_INPUT)


def _add_signatures(archive: keras.export.ExportArchive, generator: keras.Model, cfg: Config, all_stages: bool) -> None:
    lr, hr = cfg.lr_size, cfg.hr_size
    lr_message = f"{signatures.UINT8_INPUT}: expected uint8 LR faces of shape [N, {lr}, {lr}, 3]"

    def sr_faces(lr_faces):
        lr_faces = _checked(lr_faces, [None, lr, lr, 3], lr_message)
        return {signatures.UINT8_OUTPUT: stages_from_uint8(generator, lr_faces, hr, cfg.flip_ensemble)[-1]}

    def decode_face(data):
        image = tf.io.decode_image(data, channels=3, dtype=tf.uint8, expand_animations=False)
        return _checked(image, [lr, lr, 3], f"{signatures.ENCODED_INPUT}: expected encoded images of"
                                            f" {lr}x{lr} pixels (JPEG, PNG, BMP or GIF)")

    def encoded(image_bytes):
        image_bytes = _checked(image_bytes, [None], f"{signatures.ENCODED_INPUT}: expected a 1-D batch of"
                                                    " encoded images (string [N])")
        faces = tf.map_fn(decode_face, image_bytes, fn_output_signature=tf.TensorSpec([lr, lr, 3], tf.uint8))
        sr = stages_from_uint8(generator, faces, hr, cfg.flip_ensemble)[-1]
        png = tf.map_fn(tf.io.encode_png, sr, fn_output_signature=tf.TensorSpec([], tf.string))
        return {signatures.ENCODED_OUTPUT: png}

    def stages(lr_faces):
        lr_faces = _checked(lr_faces, [None, lr, lr, 3], lr_message)
        outputs = stages_from_uint8(generator, lr_faces, hr, cfg.flip_ensemble)
        return {signatures.STAGE_OUTPUT_PREFIX + stage_name(k): out for k, out in enumerate(outputs)}

    archive.add_endpoint(signatures.UINT8_SIGNATURE, sr_faces, input_signature=[_uint8_spec(lr)])
    archive.add_endpoint(signatures.ENCODED_SIGNATURE, encoded,
                         input_signature=[tf.TensorSpec([None], tf.string, name=signatures.ENCODED_INPUT)])
    if all_stages:
        archive.add_endpoint(signatures.STAGES_SIGNATURE, stages, input_signature=[_uint8_spec(lr)])


def _smoke_test(path: str, generator: keras.Model, cfg: Config) -> None:
    """Reload the written model and compare it with the Keras generator on a random batch."""
    lr = tf.constant(np.random.default_rng(0).integers(0, 256, [2, cfg.lr_size, cfg.lr_size, 3], dtype=np.uint8))
    expected = stages_from_uint8(generator, lr, cfg.hr_size, cfg.flip_ensemble)[-1].numpy().astype(int)
    loaded = tf.saved_model.load(path)
    got = loaded.signatures[signatures.UINT8_SIGNATURE](**{signatures.UINT8_INPUT: lr})[signatures.UINT8_OUTPUT]
    diff = int(np.abs(got.numpy().astype(int) - expected).max())
    if diff > 1:
        raise RuntimeError(f"exported model differs from the Keras generator by {diff} grey levels")


def export(model_dir: str | None, export_dir: str, *, all_stages: bool = False, gan_model: str | None = None,
           alpha: float | None = None, flip_ensemble: bool | None = None, overwrite: bool = False) -> dict[str, Any]:
    """Write the SavedModel of `model_dir`'s generator to `export_dir`; returns its metadata.

    `model_dir`, `gan_model` and `alpha` name the model as `tf_stacksr.models.load_generator`
    takes them (None: the shipped default).

    `export_dir` is one TF Serving version folder (e.g. models/stacksr/1). An existing one is
    refused unless `overwrite`, since TF Serving may be serving it.
    """
    export_dir = os.path.normpath(export_dir)
    if os.path.exists(export_dir) and not overwrite:
        raise FileExistsError(f"--export_dir={export_dir} already exists; pick a new version folder or pass --overwrite")
    model_dir, gan_model = models.choose(model_dir, gan_model, alpha)
    cfg, generator = models.load_generator(model_dir, gan_model=gan_model, alpha=alpha, flip_ensemble=flip_ensemble)
    metadata = {
        "lr_size": cfg.lr_size, "hr_size": cfg.hr_size, "scale": cfg.scale,
        "stage_sizes": list(cfg.stage_sizes),
        "signatures": [signatures.UINT8_SIGNATURE, signatures.ENCODED_SIGNATURE]
                      + ([signatures.STAGES_SIGNATURE] if all_stages else []),
        "model_dir": os.path.abspath(model_dir),
        "checkpoint": models.weights_file(model_dir),
        "gan_model": os.path.abspath(gan_model) if gan_model else None,
        "alpha": alpha,
        "config": cfg.to_dict(),
    }
    with files.atomic_folder(export_dir) as tmp:
        archive = keras.export.ExportArchive()
        archive.track(generator)
        _add_signatures(archive, generator, cfg, all_stages)
        archive.write_out(tmp, verbose=False)
        os.makedirs(os.path.join(tmp, os.path.dirname(signatures.METADATA_FILE)), exist_ok=True)
        with open(os.path.join(tmp, signatures.METADATA_FILE), "w") as fh:
            json.dump(metadata, fh, indent=2, sort_keys=True)
        _smoke_test(tmp, generator, cfg)
    return metadata
