"""Trained generator -> SavedModel for TensorFlow Serving (contract in `tf_stacksr.serving.signatures`).

Everything a client would otherwise have to reproduce runs inside the graph: uint8 -> [-1, 1],
the bicubic pre-upscale to the HR size, the generator, rounding and clipping back to uint8
(the same `upscalers.stages_from_uint8` the Python upscaler and evaluation use), and, for the
`encoded` signature, image decoding and PNG encoding.

TF Serving checks neither shapes nor batch structure of a request, so each signature checks its
input at run time with `tf.debugging.Assert` and a message naming the input and the expected
shape; such a request fails with that message instead of deep inside a convolution. The same
checks bound what one request may cost: at most `max_batch` faces (export --max_batch), and an
encoded image's size is read from its header and checked before its pixels are decoded (a small
file may declare a huge image). An empty batch returns an empty batch.

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


def _checked(tensor: tf.Tensor, expected: list[int | None], message: str, max_batch: int | None = None,
             batch_message: str = "") -> tf.Tensor:
    """`tensor` after a run-time check that its shape matches `expected` (None: any size).

    Computed from the run-time shape (`tf.shape`), never the traced one, so the check stays in
    the graph and also catches requests whose rank differs from the signature's. With
    `max_batch`, a second check fails with `batch_message` when the first size exceeds it.
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
    checks = [tf.debugging.Assert(ok, [message + "; got shape", shape], summarize=rank + 2)]
    if max_batch is not None:
        checks.append(tf.debugging.Assert(padded[0] <= max_batch, [tf.strings.format(batch_message + "; got {}",
                                                                                       padded[0])]))
    with tf.control_dependencies(checks):
        checked = tf.identity(tensor)
    checked.set_shape(expected)  # static only: a run-time EnsureShape could fire before the Assert
    return checked


def _uint8_spec(size: int) -> tf.TensorSpec:
    return tf.TensorSpec([None, size, size, 3], tf.uint8, name=signatures.UINT8_INPUT)


def _stages(generator: keras.Model, cfg: Config, lr_faces: tf.Tensor, branches: int) -> list[tf.Tensor]:
    """`stages_from_uint8` for any batch size, 0 included (a convolution of an empty batch fails on
    CPU): an empty batch runs as one black face, and every output is cut back to the batch size."""
    n = tf.shape(lr_faces)[0]
    filler = tf.zeros([tf.maximum(1 - n, 0), cfg.lr_size, cfg.lr_size, 3], tf.uint8)
    outputs = stages_from_uint8(generator, tf.concat([lr_faces, filler], axis=0), cfg.hr_size, cfg.flip_ensemble,
                                branches=branches)
    return [out[:n] for out in outputs]


_JPEG, _PNG, _GIF, _BMP = b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF8", b"BM"  # as tf.io.decode_image tells them apart


def max_gif_bytes(lr_size: int) -> int:
    """The largest GIF the `encoded` signature takes: ample for an lr x lr face (header, 256-colour
    palette, LZW at <= 12 bits a pixel), and it bounds what decoding may allocate, since TF's GIF
    decoder decompresses every frame (LZW: up to ~2700x) before any size is checked."""
    return 2048 + 2 * lr_size * lr_size


def _declared_size(data: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(known format, [height, width]) an encoded image declares, read from its header without
    decoding its pixels: JPEG through `tf.image.extract_jpeg_shape`, PNG (IHDR), GIF (logical
    screen) and BMP (info header) from their first 26 bytes. [-1, -1] for any other format."""
    head = tf.strings.substr(tf.strings.join([tf.strings.substr(data, 0, 26), b"\0" * 26]), 0, 26)
    byte = tf.cast(tf.io.decode_raw(head, tf.uint8), tf.int64)

    def number(start: int, size: int, big_endian: bool) -> tf.Tensor:
        order = range(size) if big_endian else reversed(range(size))
        value = tf.constant(0, tf.int64)
        for i in order:
            value = value * 256 + byte[start + i]
        return value

    def starts(magic: bytes) -> tf.Tensor:
        return tf.equal(tf.strings.substr(head, 0, len(magic)), magic)

    signed = lambda v: tf.where(v >= 2 ** 31, v - 2 ** 32, v)  # noqa: E731 - BMP sizes are int32
    png = tf.logical_and(starts(_PNG), tf.equal(tf.strings.substr(head, 12, 4), b"IHDR"))
    is_jpeg = starts(_JPEG)
    sizes = tf.stack([tf.stack([number(20, 4, True), number(16, 4, True)]),
                      tf.stack([number(8, 2, False), number(6, 2, False)]),
                      tf.stack([tf.abs(signed(number(22, 4, False))), signed(number(18, 4, False))])])
    known = tf.stack([png, starts(_GIF), starts(_BMP)])
    other = tf.where(tf.reduce_any(known), tf.reduce_sum(tf.where(known[:, None], sizes, 0), axis=0),
                     tf.constant([-1, -1], tf.int64))
    size = tf.cond(is_jpeg, lambda: tf.cast(tf.image.extract_jpeg_shape(data)[:2], tf.int64), lambda: other)
    return tf.logical_or(is_jpeg, tf.reduce_any(known)), size


def _add_signatures(archive: keras.export.ExportArchive, generator: keras.Model, cfg: Config, all_stages: bool,
                    max_batch: int, branches: int) -> None:
    lr = cfg.lr_size
    lr_message = f"{signatures.UINT8_INPUT}: expected uint8 LR faces of shape [N, {lr}, {lr}, 3]"
    lr_batch = f"{signatures.UINT8_INPUT}: at most {max_batch} faces per request (export --max_batch)"
    size_message = f"{signatures.ENCODED_INPUT}: expected encoded images of {lr}x{lr} pixels (JPEG, PNG, BMP or GIF)"
    gif_bytes = max_gif_bytes(lr)

    def checked_faces(lr_faces):
        return _checked(lr_faces, [None, lr, lr, 3], lr_message, max_batch, lr_batch)

    def sr_faces(lr_faces):
        return {signatures.UINT8_OUTPUT: _stages(generator, cfg, checked_faces(lr_faces), branches)[-1]}

    def decode_face(args):
        data, index = args
        known, size = _declared_size(data)
        is_gif = tf.equal(tf.strings.substr(data, 0, len(_GIF)), _GIF)
        length = tf.strings.length(data)
        fail = lambda ok, template, *values: tf.debugging.Assert(  # noqa: E731
            ok, [tf.strings.format(template, (index, *values))])
        checks = [
            fail(known, f"{signatures.ENCODED_INPUT}: expected JPEG, PNG, BMP or GIF files (told apart by their first"
                        " bytes); image {} is none of these"),
            fail(tf.logical_or(tf.logical_not(is_gif), length <= gif_bytes),
                 f"{signatures.ENCODED_INPUT}: a GIF of {lr}x{lr} pixels takes at most {gif_bytes} bytes (send PNG"
                 " instead); image {} has {} bytes", length),
            fail(tf.reduce_all(tf.equal(size, lr)), size_message + "; image {} declares {}x{} pixels (height x width)",
                 size[0], size[1]),
        ]
        with tf.control_dependencies(checks):  # nothing is decoded before its header passed
            image = tf.io.decode_image(tf.identity(data), channels=3, dtype=tf.uint8, expand_animations=False)
        return _checked(image, [lr, lr, 3], size_message)

    def encoded(image_bytes):
        image_bytes = _checked(image_bytes, [None], f"{signatures.ENCODED_INPUT}: expected a 1-D batch of"
                                                    " encoded images (string [N])", max_batch,
                               f"{signatures.ENCODED_INPUT}: at most {max_batch} images per request (export --max_batch)")
        faces = tf.map_fn(decode_face, (image_bytes, tf.range(tf.shape(image_bytes)[0])),
                          fn_output_signature=tf.TensorSpec([lr, lr, 3], tf.uint8))
        sr = _stages(generator, cfg, faces, branches)[-1]
        png = tf.map_fn(tf.io.encode_png, sr, fn_output_signature=tf.TensorSpec([], tf.string))
        return {signatures.ENCODED_OUTPUT: png}

    def stages(lr_faces):
        outputs = _stages(generator, cfg, checked_faces(lr_faces), branches)
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


def provenance(cfg: Config, model_dir: str, gan_model: str | None, alpha: float | None) -> dict:
    """What an exported file was made from (its metadata's model fields): the model, the checkpoint
    its weights came from, the blend, and the full config."""
    return {
        "model_dir": os.path.abspath(model_dir),
        "checkpoint": models.weights_file(model_dir),
        "gan_model": os.path.abspath(gan_model) if gan_model else None,
        "alpha": alpha,
        "config": cfg.to_dict(),
    }


def export(model_dir: str | None, export_dir: str, *, all_stages: bool = False, gan_model: str | None = None,
           alpha: float | None = None, flip_ensemble: bool | None = None, overwrite: bool = False,
           max_batch: int = signatures.MAX_BATCH, batch_branches: int = signatures.BATCH_BRANCHES) -> dict[str, Any]:
    """Write the SavedModel of `model_dir`'s generator to `export_dir`; returns its metadata.

    `model_dir`, `gan_model` and `alpha` name the model as `tf_stacksr.models.load_generator`
    takes them (None: the shipped default).

    `export_dir` is one TF Serving version folder (e.g. models/stacksr/1). An existing one is
    refused unless `overwrite`, since TF Serving may be serving it.

    `max_batch` caps the faces (or images) of one request in every signature; a request of at
    least `batch_branches` faces is cut into that many parts run side by side
    (`upscalers.stages_from_uint8`; 1 runs every batch whole, as on a GPU one batch fills the device).
    """
    if max_batch < 1:
        raise ValueError(f"--max_batch={max_batch}: expected a positive number of faces per request")
    if batch_branches < 1:
        raise ValueError(f"--batch_branches={batch_branches}: expected a positive number of parts per batch")
    export_dir = os.path.normpath(export_dir)
    if os.path.exists(export_dir) and not overwrite:
        raise FileExistsError(f"--export_dir={export_dir} already exists; pick a new version folder or pass --overwrite")
    model_dir, gan_model = models.choose(model_dir, gan_model, alpha)
    cfg, generator = models.load_generator(model_dir, gan_model=gan_model, alpha=alpha, flip_ensemble=flip_ensemble)
    metadata = {
        "lr_size": cfg.lr_size, "hr_size": cfg.hr_size, "scale": cfg.scale,
        "stage_sizes": list(cfg.stage_sizes), "max_batch": max_batch, "batch_branches": batch_branches,
        "signatures": [signatures.UINT8_SIGNATURE, signatures.ENCODED_SIGNATURE]
                      + ([signatures.STAGES_SIGNATURE] if all_stages else []),
        **provenance(cfg, model_dir, gan_model, alpha),
    }
    with files.atomic_folder(export_dir) as tmp:
        archive = keras.export.ExportArchive()
        archive.track(generator)
        _add_signatures(archive, generator, cfg, all_stages, max_batch, batch_branches)
        archive.write_out(tmp, verbose=False)
        os.makedirs(os.path.join(tmp, os.path.dirname(signatures.METADATA_FILE)), exist_ok=True)
        with open(os.path.join(tmp, signatures.METADATA_FILE), "w") as fh:
            json.dump(metadata, fh, indent=2, sort_keys=True)
        _smoke_test(tmp, generator, cfg)
    return metadata
