"""LiteRT export: bicubic as matrix products, the float16 and int8 files in the ai-edge-litert interpreter, bad flags."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from conftest import FIXTURES, REPO, tiny_config

from tf_stacksr import models
from tf_stacksr.data import pairs
from tf_stacksr.metrics import image as image_metrics
from tf_stacksr.models import packed
from tf_stacksr.networks import build_generator
from tf_stacksr.serving import litert_export, signatures

pytest.importorskip("ai_edge_litert")

CELEBA = str(FIXTURES / "celeba")
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}


@pytest.fixture(scope="module")
def random_model(tmp_path_factory):
    """The tiny 16->64 generator (flip ensemble on) with random weights of full strength, packed.
    Untrained, its residual stages would output the bicubic input whatever the convolutions do."""
    cfg = tiny_config(tmp_path_factory.mktemp("unused"), flip_ensemble=True)
    generator = build_generator(cfg)
    rng = np.random.default_rng(0)
    for weight in generator.weights:
        shape = tuple(weight.shape)
        if len(shape) == 4:  # conv kernels: He-scaled
            weight.assign(rng.normal(0, np.sqrt(2.0 / np.prod(shape[:-1])), shape).astype(np.float32))
        elif weight.path.endswith("bias"):
            weight.assign(rng.normal(0, 0.1, shape).astype(np.float32))
    return packed.pack(cfg, generator, str(tmp_path_factory.mktemp("random_model") / "model"), quantized=False)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, random_model):
    export_dir = str(tmp_path_factory.mktemp("litert") / "tiny")
    metadata = litert_export.export(random_model, export_dir, calibration_data=CELEBA, calibration_faces=16)
    faces = litert_export.lr_faces(CELEBA, 16, 64, 32)[-6:]  # not among the 8 + 16 the export used
    return {"dir": export_dir, "metadata": metadata, "faces": faces, "keras": models.load(random_model)(faces)}


def op_names(runner) -> set[str]:
    return {op["op_name"] for op in runner._get_ops_details()}


@pytest.mark.parametrize("lr_size,hr_size", [(16, 64), (8, 32), (32, 128), (16, 32)])
def test_bicubic_as_matrix_products_equals_resize(lr_size, hr_size):
    images = tf.constant(np.random.default_rng(lr_size).uniform(-1, 1, [2, lr_size, lr_size, 3]), tf.float32)
    expected = pairs.upscale(images, hr_size).numpy()
    got = litert_export.matmul_upscale(lr_size, hr_size)(images, hr_size).numpy()
    np.testing.assert_allclose(got, expected, atol=2e-6)
    assert np.abs(expected).max() > 0.9  # the comparison covers the clipped range too


@pytest.mark.slow
def test_files_and_metadata(exported):
    with open(os.path.join(exported["dir"], litert_export.METADATA_FILE)) as fh:
        metadata = json.load(fh)
    assert metadata["lr_size"] == 16 and metadata["hr_size"] == 64 and metadata["flip_ensemble"] is True
    assert metadata["input"] == {"name": "lr_faces", "dtype": "uint8", "shape": [-1, 16, 16, 3]}
    assert metadata["output"] == {"name": "sr_faces", "dtype": "uint8", "shape": [-1, 64, 64, 3]}
    assert metadata["checkpoint"].endswith("generator.npz")
    for variant in ("float16", "int8"):
        entry = metadata["files"][variant]
        assert os.path.getsize(os.path.join(exported["dir"], entry["file"])) == entry["bytes"]
    assert metadata["files"]["int8"]["quantization"] == "calibrated_int8"
    assert metadata["files"]["int8"]["calibration_faces"] == 16
    assert metadata["files"]["int8"]["bytes"] < metadata["files"]["float16"]["bytes"]


@pytest.mark.slow
@pytest.mark.parametrize("batch", [1, 6])
def test_float16_file_matches_keras(exported, batch):
    runner = litert_export.interpreter(os.path.join(exported["dir"], litert_export.FLOAT16_FILE), num_threads=2)
    assert runner.get_signature_list() == {signatures.UINT8_SIGNATURE: {"inputs": [signatures.UINT8_INPUT],
                                                                        "outputs": [signatures.UINT8_OUTPUT]}}
    got = litert_export.run(runner, exported["faces"][:batch])
    expected = exported["keras"][:batch]
    assert got.dtype == np.uint8 and got.shape == (batch, 64, 64, 3)
    assert expected.std() > 20  # random weights: a detailed image, not a flat one
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1
    assert not any(name.startswith("Flex") for name in op_names(runner))


@pytest.mark.slow
def test_int8_file_is_quantized_and_close(exported):
    runner = litert_export.interpreter(os.path.join(exported["dir"], litert_export.INT8_FILE), num_threads=2)
    tensors = runner.get_tensor_details()
    convs = [op for op in runner._get_ops_details() if op["op_name"] == "CONV_2D"]
    assert convs and all(tensors[op["inputs"][1]]["dtype"] == np.int8 for op in convs)  # int8 kernels
    assert all(tensors[op["outputs"][0]]["dtype"] == np.int8 for op in convs)  # int8 activations
    assert not any(name.startswith("Flex") for name in op_names(runner))
    got = litert_export.run(runner, exported["faces"])
    assert got.dtype == np.uint8 and got.shape == (6, 64, 64, 3)
    psnr = np.mean(image_metrics.psnr(got, exported["keras"]))
    assert np.isfinite(psnr) and psnr > 25.0
    assert exported["metadata"]["files"]["int8"]["psnr_vs_keras_db"] > 25.0


@pytest.mark.slow
def test_without_calibration_faces_int8_is_dynamic_range(tmp_path, tiny_run):
    """The tiny run's training data (its config's data_dir) is moved away: nothing to calibrate on."""
    model = tmp_path / "run"
    shutil.copytree(tiny_run(), model)
    values = json.loads((model / "config.json").read_text())
    values["data_dir"] = str(tmp_path / "missing")
    (model / "config.json").write_text(json.dumps(values))
    metadata = litert_export.export(str(model), str(tmp_path / "out"))
    assert metadata["files"]["int8"]["quantization"] == "dynamic_range_int8"
    assert metadata["files"]["int8"]["calibration_data"] is None
    runner = litert_export.interpreter(str(tmp_path / "out" / litert_export.INT8_FILE))
    assert litert_export.run(runner, np.zeros([2, 16, 16, 3], np.uint8)).shape == (2, 64, 64, 3)


def test_bad_arguments_name_the_flag(tmp_path, tiny_run):
    with pytest.raises(FileNotFoundError, match="--calibration_data=.*not a folder"):
        litert_export.export(tiny_run(), str(tmp_path / "a"), calibration_data=str(tmp_path / "nope"))
    with pytest.raises(ValueError, match="--calibration_faces=0"):
        litert_export.export(tiny_run(), str(tmp_path / "a"), calibration_faces=0)
    (tmp_path / "exists").mkdir()
    with pytest.raises(FileExistsError, match="--export_dir=.*--overwrite"):
        litert_export.export(tiny_run(), str(tmp_path / "exists"))
    few = tmp_path / "few"
    few.mkdir()
    for name in sorted(os.listdir(CELEBA))[:3]:
        os.symlink(os.path.join(CELEBA, name), few / name)
    with pytest.raises(ValueError, match="--calibration_data=.*3 faces"):
        litert_export.export(tiny_run(), str(tmp_path / "b"), calibration_data=str(few))


@pytest.mark.parametrize("args,message", [
    (["--format=onnx"], "--format"),
    (["--format=tflite", "--all_stages"], "--all_stages is for --format=saved_model"),
    (["--format=tflite", "--max_batch=4"], "--max_batch is for --format=saved_model"),
    (["--calibration_faces=10"], "--calibration_faces is for --format=tflite"),
])
def test_command_rejects_flags_that_do_not_apply(tmp_path, args, message):
    result = subprocess.run([sys.executable, "-m", "tf_stacksr.export", f"--export_dir={tmp_path / 'x'}", *args],
                            check=False, capture_output=True, text=True, env=ENV, cwd=str(REPO))
    assert result.returncode != 0
    assert message in result.stderr + result.stdout
    assert not (tmp_path / "x").exists()
