"""Trained generator -> LiteRT (TFLite) files for phones and edge devices: a float16 and an int8 variant.

Each file holds the SavedModel's `serving_default` contract (`signatures`): one signature of that
name taking `lr_faces` uint8 [N, lr, lr, 3] (RGB, N >= 1) and returning `sr_faces` uint8
[N, hr, hr, 3], with everything between inside the graph: uint8 -> [-1, 1], the bicubic
pre-upscale, the generator (and its flip ensemble where the model has it on, as the SavedModel
export does), rounding and clipping back to uint8 (`upscalers.stages_from_uint8`). Only builtin
LiteRT ops are used, so the files run in the plain `ai-edge-litert` interpreter (no Flex ops).

LiteRT has no bicubic resize op, but an integer-factor bicubic upscale is a fixed linear map
along each axis: it is written here as two products with a constant [hr, lr] matrix, built by
resizing a one-hot basis with `pairs.bicubic_resize` itself (`bicubic_matrix`).

- `model_float16.tflite`: float16 weights (half the size of float32), computed in float32; within
  one grey level of the SavedModel.
- `model_int8.tflite`: full-integer int8 quantization of the convolutions and the bicubic
  products (their weights and activations), calibrated on LR faces made from the aligned faces
  of `calibration_data` as training makes them. Instance normalisation, residual sums and the
  uint8 conversions stay in float: quantized to int8 they collapse the output (under 17 dB PSNR
  against float on the shipped models), while the convolutions hold nearly all the compute.
  Without calibration faces (none given, and the model's own training data not found) the
  file is dynamic-range int8 instead (int8 weights, float activations); the metadata says which.

The export checks both files on faces before it writes them: the float16 file must match the
Keras generator within one grey level, and the int8 file's PSNR against it is recorded in
`metadata.json` (and must clear `INT8_MIN_PSNR_DB`). The folder appears only when complete.
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Callable

import keras
import numpy as np
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import (
    convert_variables_to_constants_v2,
)

from tf_stacksr import files, models
from tf_stacksr.config import Config
from tf_stacksr.data import pairs
from tf_stacksr.metrics import image as image_metrics
from tf_stacksr.serving import export_lib, signatures
from tf_stacksr.serving.upscalers import stages_from_uint8

FLOAT16_FILE = "model_float16.tflite"
INT8_FILE = "model_int8.tflite"
METADATA_FILE = "metadata.json"

# Ops left in float in the int8 file: instance normalisation, residual sums, uint8 conversions.
FLOAT_OPS = ("ADD", "SUB", "MUL", "DIV", "MEAN", "SQUARE", "SQUARED_DIFFERENCE", "RSQRT", "MINIMUM", "MAXIMUM",
             "ROUND")
CHECK_FACES = 8  # faces held out of calibration to check both files on
INT8_MIN_PSNR_DB = 30.0  # an int8 file further than this from float is refused, not written


def bicubic_matrix(lr_size: int, hr_size: int) -> np.ndarray:
    """M [hr, lr] with pairs.bicubic_resize(x, hr) == M x M^T (per image and channel) for x [lr, lr].

    Column a is the resize of the image whose row a is one and every other row zero: the resize
    is separable and keeps constant rows, so this is exactly its vertical (and horizontal) map.
    """
    basis = np.eye(lr_size, dtype=np.float32)[:, :, None, None] * np.ones([1, 1, lr_size, 1], np.float32)
    columns = pairs.bicubic_resize(tf.constant(basis), hr_size)[:, :, 0, 0]  # [lr (basis row a), hr]
    return np.ascontiguousarray(columns.numpy().T)


def matmul_upscale(lr_size: int, hr_size: int) -> Callable[[tf.Tensor, int], tf.Tensor]:
    """`pairs.upscale` of [N, lr, lr, C] images written as matrix products (LiteRT builtins)."""
    matrix = tf.constant(bicubic_matrix(lr_size, hr_size))

    def upscale(images: tf.Tensor, size: int) -> tf.Tensor:
        if size != hr_size:
            raise ValueError(f"this upscale makes {hr_size} px images, not {size}")
        rows = tf.matmul(tf.transpose(images, [0, 3, 2, 1]), matrix, transpose_b=True)  # [N, C, w, hr]
        both = tf.matmul(tf.transpose(rows, [0, 1, 3, 2]), matrix, transpose_b=True)  # [N, C, hr, hr]
        return tf.clip_by_value(tf.transpose(both, [0, 2, 3, 1]), -1.0, 1.0)

    return upscale


def _converter(generator: keras.Model, cfg: Config) -> tf.lite.TFLiteConverter:
    """A converter of the uint8 -> uint8 signature, the generator's weights frozen into it as
    constants (left as variables, the int8 calibration cannot read them)."""
    upscale = matmul_upscale(cfg.lr_size, cfg.hr_size)
    spec = tf.TensorSpec([None, cfg.lr_size, cfg.lr_size, 3], tf.uint8, name=signatures.UINT8_INPUT)
    sr_faces = tf.function(lambda lr_faces: stages_from_uint8(generator, lr_faces, cfg.hr_size, cfg.flip_ensemble,
                                                               upscale=upscale)[-1], input_signature=[spec])
    frozen = convert_variables_to_constants_v2(sr_faces.get_concrete_function())
    # Freezing drops the output's name: the signature gets it back here.
    signature = tf.function(lambda lr_faces: {signatures.UINT8_OUTPUT: frozen(lr_faces)[0]}, input_signature=[spec])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([signature.get_concrete_function()],
                                                                trackable_obj=tf.Module())
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return converter


def convert_float16(generator: keras.Model, cfg: Config) -> bytes:
    converter = _converter(generator, cfg)
    converter.target_spec.supported_types = [tf.float16]
    return converter.convert()


def convert_int8(generator: keras.Model, cfg: Config, calibration: np.ndarray | None) -> bytes:
    """The int8 file: full-integer (module doc) calibrated on `calibration` (uint8 LR faces), or
    dynamic-range when it is None."""
    converter = _converter(generator, cfg)
    if calibration is None:
        return converter.convert()
    converter.representative_dataset = lambda: ([face[None]] for face in calibration)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
    # Selective quantization: the documented way to keep chosen op types in float.
    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_ops=list(FLOAT_OPS))
    with warnings.catch_warnings():  # it builds a tf.lite.Interpreter, which warns that it is deprecated
        warnings.simplefilter("ignore")
        debugger = tf.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset=lambda: iter(()),
                                                             debug_options=options)
    return debugger.get_nondebug_quantized_model()


def interpreter(model: bytes | str, num_threads: int | None = None):
    """The `ai-edge-litert` interpreter of a model file's path or contents, tensors allocated."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as err:
        raise ImportError("running LiteRT files needs the ai-edge-litert package: pip install ai-edge-litert") from err
    if isinstance(model, bytes):
        runner = Interpreter(model_content=model, num_threads=num_threads)
    else:
        runner = Interpreter(model_path=model, num_threads=num_threads)
    runner.allocate_tensors()
    return runner


def run(runner, lr_faces: np.ndarray) -> np.ndarray:
    """uint8 LR faces [N, lr, lr, 3] -> uint8 SR faces through a LiteRT file's signature."""
    return runner.get_signature_runner(signatures.UINT8_SIGNATURE)(**{signatures.UINT8_INPUT: lr_faces})[
        signatures.UINT8_OUTPUT]


def lr_faces(data: str, lr_size: int, hr_size: int, count: int) -> np.ndarray:
    """Up to `count` uint8 LR faces from `data` (a folder of aligned faces or prepared shards,
    their train split), made as training makes them: HR face -> antialiased bicubic -> uint8."""
    from tf_stacksr.evaluation import eval_data

    try:
        source = eval_data.open_faces(data, hr_size, limit=count, split="train")
        hr = np.stack([face for _, _, face in source.dataset.as_numpy_iterator()]) if source.size else None
    except (ValueError, tf.errors.OpError) as err:
        raise ValueError(f"--calibration_data={data}: {err}") from err
    if hr is None:
        raise ValueError(f"--calibration_data={data}: no faces found; expected a folder of aligned face images or"
                         " prepared shards")
    return pairs.float_to_uint8(pairs.downscale(tf.constant(hr), lr_size)).numpy()


def _calibration_source(calibration_data: str | None, cfg: Config) -> str | None:
    """The faces to calibrate on: `calibration_data`, else the model's own training data if present."""
    if calibration_data is not None:
        return calibration_data
    return cfg.data_dir if cfg.data_dir and os.path.isdir(cfg.data_dir) else None


def export(model_dir: str | None, export_dir: str, *, gan_model: str | None = None, alpha: float | None = None,
           flip_ensemble: bool | None = None, calibration_data: str | None = None, calibration_faces: int = 200,
           overwrite: bool = False) -> dict[str, Any]:
    """Write `FLOAT16_FILE`, `INT8_FILE` and `METADATA_FILE` of `model_dir`'s generator into the
    new folder `export_dir`; returns the metadata.

    The model is named as `tf_stacksr.models.load_generator` takes it (None: the shipped default);
    `flip_ensemble` None keeps the model's own setting. The int8 file is calibrated on
    `calibration_faces` faces of `calibration_data` (module doc).
    """
    if calibration_faces < 1:
        raise ValueError(f"--calibration_faces={calibration_faces}: expected a positive number of faces")
    if calibration_data is not None and not os.path.isdir(calibration_data):
        raise FileNotFoundError(f"--calibration_data={calibration_data}: not a folder; expected aligned face images"
                                " or prepared shards (python -m tf_stacksr.prepare)")
    export_dir = os.path.normpath(export_dir)
    if os.path.exists(export_dir) and not overwrite:
        raise FileExistsError(f"--export_dir={export_dir} already exists; pick a new folder or pass --overwrite")
    model_dir, gan_model = models.choose(model_dir, gan_model, alpha)
    cfg, generator = models.load_generator(model_dir, gan_model=gan_model, alpha=alpha, flip_ensemble=flip_ensemble)

    source = _calibration_source(calibration_data, cfg)
    if source is not None:
        faces = lr_faces(source, cfg.lr_size, cfg.hr_size, calibration_faces + CHECK_FACES)
        if len(faces) <= CHECK_FACES:
            raise ValueError(f"--calibration_data={source}: {len(faces)} faces; need more than {CHECK_FACES} (that"
                             " many check the files, the rest calibrate)")
        check, calibration = faces[:CHECK_FACES], faces[CHECK_FACES:]
        checked_on = f"{len(check)} faces of {os.path.abspath(source)} not used in calibration"
    else:
        check = np.random.default_rng(0).integers(0, 256, [CHECK_FACES, cfg.lr_size, cfg.lr_size, 3], dtype=np.uint8)
        calibration, checked_on = None, f"{CHECK_FACES} random noise images (no faces to calibrate on)"

    float16 = convert_float16(generator, cfg)
    int8 = convert_int8(generator, cfg, calibration)
    expected = stages_from_uint8(generator, tf.constant(check), cfg.hr_size, cfg.flip_ensemble)[-1].numpy()
    got16 = run(interpreter(float16), check)
    diff = int(np.abs(got16.astype(int) - expected.astype(int)).max())
    if diff > 1:
        raise RuntimeError(f"{FLOAT16_FILE} differs from the Keras generator by {diff} grey levels")
    int8_psnr = float(np.mean(image_metrics.psnr(run(interpreter(int8), check), expected)))
    if not int8_psnr >= INT8_MIN_PSNR_DB:
        raise RuntimeError(f"{INT8_FILE} is {int8_psnr:.1f} dB PSNR from the Keras generator on {checked_on}; under"
                           f" the {INT8_MIN_PSNR_DB} dB expected of int8 (try other --calibration_data)")

    io = {"input": {"name": signatures.UINT8_INPUT, "dtype": "uint8", "shape": [-1, cfg.lr_size, cfg.lr_size, 3]},
          "output": {"name": signatures.UINT8_OUTPUT, "dtype": "uint8", "shape": [-1, cfg.hr_size, cfg.hr_size, 3]}}
    metadata = {
        "lr_size": cfg.lr_size, "hr_size": cfg.hr_size, "scale": cfg.scale, "colors": "RGB",
        "signature": signatures.UINT8_SIGNATURE, **io,
        "flip_ensemble": cfg.flip_ensemble,
        "files": {
            "float16": {"file": FLOAT16_FILE, "bytes": len(float16), "weights": "float16", "compute": "float32",
                        "max_abs_diff_vs_keras": diff},
            "int8": {"file": INT8_FILE, "bytes": len(int8),
                     "quantization": "calibrated_int8" if calibration is not None else "dynamic_range_int8",
                     "float_ops": list(FLOAT_OPS) if calibration is not None else None,
                     "calibration_data": os.path.abspath(source) if source is not None else None,
                     "calibration_faces": len(calibration) if calibration is not None else 0,
                     "psnr_vs_keras_db": round(int8_psnr, 2), "checked_on": checked_on},
        },
        **export_lib.provenance(cfg, model_dir, gan_model, alpha),
    }
    with files.atomic_folder(export_dir) as tmp:
        for name, content in ((FLOAT16_FILE, float16), (INT8_FILE, int8)):
            with open(os.path.join(tmp, name), "wb") as fh:
                fh.write(content)
        files.write_json(os.path.join(tmp, METADATA_FILE), metadata)
    return metadata
