"""tf_stacksr.data.portable and the TF-free L1 trainer (tools/faces_to_npz.py, tools/train_l1_keras.py).

The references are TensorFlow's own: `tf.image.resize` for the operators and
`pairs.make_pairs` (after the `shards.load_record` resize) for the pairs.
"""

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import tensorflow as tf
from conftest import FIXTURES, REPO, TINY_32, as_flags

from tf_stacksr.data import pairs, portable
from tf_stacksr.models import packed

TOOLS = REPO / "tools"
FFHQ = FIXTURES / "ffhq"


@pytest.mark.parametrize("src,dst,antialias", [(64, 16, True), (48, 24, True), (16, 64, False)])
def test_resize_matrix_is_tf_resize(src, dst, antialias):
    m = portable.resize_matrix(src, dst, antialias=antialias)
    x = np.random.default_rng(0).uniform(-1, 1, (2, src, src, 3)).astype(np.float32)
    want = tf.image.resize(x, [dst, dst], method="bicubic", antialias=antialias).numpy()
    np.testing.assert_allclose(np.einsum("ih,bhwc,jw->bijc", m, x, m), want, atol=2e-6)


def _faces(size: int, n: int = 3) -> np.ndarray:
    photos = sorted(FFHQ.glob("*"))
    faces = [cv2.resize(cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB), (size, size), interpolation=cv2.INTER_AREA)
             for p in photos if p.suffix.lower() in (".jpg", ".jpeg", ".png")]
    return np.stack((faces * n)[:n])


@pytest.mark.parametrize("face_size,stages", [(64, (16, 32, 64)), (96, (16, 32, 64)), (64, (8, 16, 32, 64))])
def test_pairs_equal_make_pairs(face_size, stages):
    faces = _faces(face_size)
    ops = portable.operators([stages[-1]], stages[-1] // stages[0], face_size)
    inputs, targets = portable.Pairs(ops, face_size, stages)(faces)
    hr = tf.clip_by_value(tf.image.resize(pairs.uint8_to_float(faces), [stages[-1]] * 2, method="bicubic", antialias=True), -1, 1)
    want = pairs.make_pairs(hr, stages)
    np.testing.assert_allclose(inputs, want["inputs"].numpy(), atol=1e-5)
    assert len(targets) == len(stages)
    for got, ref in zip(targets, want["targets"]):
        np.testing.assert_allclose(got, ref.numpy(), atol=1e-5)


def test_pairs_name_the_missing_operators():
    ops = portable.operators([32], 4, 32)
    with pytest.raises(ValueError, match=r"up_16_32.*--hr_sizes"):
        portable.Pairs(ops, 32, (16, 32))
    with pytest.raises(ValueError, match="hr_size=64"):
        portable.operators([64], 4, 32)


def test_faces_file_round_trip_and_bad_bytes(tmp_path):
    faces = _faces(32)
    jpegs = [cv2.imencode(".png", cv2.cvtColor(f, cv2.COLOR_RGB2BGR))[1].tobytes() for f in faces]  # lossless
    path = str(tmp_path / "faces.npz")
    portable.write_faces(path, jpegs, 32, portable.operators([32], 4, 32), {"fixtures": 3})
    got, ops = portable.read_faces(path)
    np.testing.assert_array_equal(got, faces)
    assert sorted(ops) == ["down_32_16", "down_32_8", "up_8_32"]
    portable.write_faces(path, jpegs[:1] + [b"not a jpeg"], 32, ops, {"fixtures": 2})
    with pytest.raises(ValueError, match="faces.npz: face 1 is not a 32x32"):
        portable.read_faces(path)


def test_config_and_portable_data_import_without_tensorflow():
    code = ("import sys; sys.modules['tensorflow'] = None\n"
            "from tf_stacksr import config, files\nfrom tf_stacksr.data import portable\n"
            "config.Config(hr_size=256, scale=4)\nprint('ok')")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-2000:]


@pytest.mark.slow
def test_train_l1_keras_writes_a_loadable_trained_model(tmp_path):
    faces = _faces(32, n=4)
    jpegs = [cv2.imencode(".jpg", cv2.cvtColor(f, cv2.COLOR_RGB2BGR))[1].tobytes() for f in faces]
    data = str(tmp_path / "faces.npz")
    portable.write_faces(data, jpegs, 32, portable.operators([32], 4, 32), {"fixtures": 4})
    out = tmp_path / "model"
    run = subprocess.run(
        [sys.executable, str(TOOLS / "train_l1_keras.py"), f"--faces={data}", f"--val_faces={data}", f"--output={out}",
         *as_flags(dict(TINY_32, adv_weight=0, lambda_l1=1, batch_size=2)), "--minutes=0.01", "--steps_per_epoch=3",
         "--workers=1"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "step 3 |" in run.stdout and "img/s" in run.stdout
    with open(out / "config.json") as fh:
        record = json.load(fh)
    assert record["hr_size"] == 32 and record["packed_from"]["steps"] == 3
    cfg, generator = packed.load(str(out))
    rgb = [w for w in generator.weights if w.path.endswith("_rgb/kernel")]
    assert rgb and all(np.abs(w.numpy()).max() > 0 for w in rgb)  # zero at init: moved by training
    with open(out / "validation.json") as fh:
        assert json.load(fh)["faces"] == 4


@pytest.mark.slow
def test_train_l1_keras_refuses_adversarial_configs(tmp_path):
    run = subprocess.run([sys.executable, str(TOOLS / "train_l1_keras.py"), f"--faces={tmp_path}/none.npz",
                          f"--output={tmp_path}/m", "--adv_weight=1"], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert run.returncode != 0 and "--adv_weight=0" in run.stderr
