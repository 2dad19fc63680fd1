"""SavedModel export: round trip in a fresh process, signatures, PredictRequest protos, bad inputs."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from conftest import FIXTURES, REPO
from PIL import Image

from tf_stacksr import models
from tf_stacksr.models import zoo
from tf_stacksr.serving import export_lib, signatures

CELEBA = os.path.join(FIXTURES, "celeba")
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}


def real_lr_faces(size: int, count: int = 4) -> np.ndarray:
    """Centre-cropped CelebA fixture photos, box-downscaled to `size`: real LR face statistics."""
    faces = []
    for name in sorted(os.listdir(CELEBA))[:count]:
        with Image.open(os.path.join(CELEBA, name)) as image:
            image = image.convert("RGB")
            side = min(image.size)
            left, top = (image.width - side) // 2, (image.height - side) // 2
            faces.append(np.asarray(image.crop((left, top, left + side, top + side)).resize((size, size), Image.BOX)))
    return np.stack(faces)


def keras_reference(model_dir: str, faces: np.ndarray) -> list[np.ndarray]:
    """Every stage of the Keras generator, with the [-1, 1] and uint8 conversions written out here."""
    cfg, generator = models.load_generator(model_dir)
    x = faces.astype(np.float32) / 127.5 - 1.0
    x = np.clip(tf.image.resize(x, [cfg.hr_size, cfg.hr_size], method="bicubic").numpy(), -1, 1)
    outputs = generator(x, training=False)
    return [np.round(np.clip((np.asarray(o) + 1.0) * 127.5, 0, 255)).astype(np.uint8) for o in outputs]


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_run):
    """The tiny model exported with every stage, four real LR faces, and the Keras model's outputs on them."""
    tmp = tmp_path_factory.mktemp("export")
    model_dir = tiny_run()
    export_dir = str(tmp / "models" / "stacksr" / "1")
    export_lib.export(model_dir, export_dir, all_stages=True)
    faces = real_lr_faces(16)
    return {"model_dir": model_dir, "export_dir": export_dir, "faces": faces,
            "reference": keras_reference(model_dir, faces)}


@pytest.fixture(scope="module")
def served(exported, tmp_path_factory):
    """What tests/serving_probe.py gets from the export in a fresh process: its outputs and error messages."""
    tmp = tmp_path_factory.mktemp("serving_probe")
    np.savez(tmp / "inputs.npz", lr_faces=exported["faces"])
    subprocess.run([sys.executable, os.path.join(REPO, "tests", "serving_probe.py"), exported["export_dir"],
                    str(tmp / "inputs.npz"), str(tmp / "results.npz")], check=True, env=ENV, cwd=str(tmp))
    results = dict(np.load(tmp / "results.npz"))
    errors = json.loads(str(results.pop("errors")))
    return {"results": results, "errors": errors}


def max_diff(a, b) -> int:
    assert a.shape == b.shape, (a.shape, b.shape)
    return int(np.abs(a.astype(int) - b.astype(int)).max())


@pytest.mark.slow
def test_fresh_process_matches_keras_model(exported, served):
    assert served["errors"]["imported_tf_stacksr"] == "False"
    ref = exported["reference"][-1]
    assert ref.shape == (4, 64, 64, 3)
    assert ref.std() > 5  # real faces, not a constant image
    assert max_diff(served["results"]["direct"], ref) <= 1


@pytest.mark.slow
def test_predict_request_and_encoded_signature(exported, served):
    ref = exported["reference"][-1]
    assert max_diff(served["results"]["proto"], ref) <= 1
    assert max_diff(served["results"]["encoded"], ref) <= 1  # PNG is lossless


@pytest.mark.slow
def test_all_stages_signature(exported, served):
    for k, ref in enumerate(exported["reference"]):
        name = "stage_" + ("lr" if k == 0 else f"x{2 ** k}")
        assert max_diff(served["results"][name], ref) <= 1, name


@pytest.mark.slow
def test_bad_inputs_get_clear_errors(served):
    errors = served["errors"]
    expected_shape = "lr_faces: expected uint8 LR faces of shape [N, 16, 16, 3]"
    # TF Serving path: only the signature's own checks see the shape.
    for case, got in [("size", "[4 8 8 3]"), ("rank", "[16 16 3]"), ("channels", "[4 16 16 4]")]:
        message = errors[f"error_session_{case}"]
        assert expected_shape in message and got in message, (case, message)
    assert "uint8" in errors["error_session_float"] and "float" in errors["error_session_float"]
    assert errors["error_session_good"] == "NO ERROR"
    # TF2 callers of the loaded signature get the same checks.
    assert "expected to be a uint8 tensor but is a float tensor" in errors["error_tf2_float"]
    for case, got in [("size", "[4 8 8 3]"), ("rank", "[16 16 3]")]:
        message = errors[f"error_tf2_{case}"]
        assert expected_shape in message and got in message, (case, message)
    assert "expected encoded images of 16x16 pixels" in errors["error_encoded_size"]
    assert "[8 16 3]" in errors["error_encoded_size"]
    assert "expected a 1-D batch of encoded images" in errors["error_encoded_rank"]
    assert "NO ERROR" != errors["error_encoded_corrupt"]
    for case in ("good", "grey", "rgba_and_jpeg"):  # every documented input format is accepted
        assert errors[f"error_encoded_{case}"] == "NO ERROR", case


@pytest.mark.slow
def test_saved_model_cli_lists_documented_signatures(exported):
    out = subprocess.run(["saved_model_cli", "show", "--all", "--dir", exported["export_dir"]], check=True,
                         capture_output=True, text=True, env=ENV).stdout
    blocks = {b.split("']", 1)[0]: b for b in out.split("signature_def['")[1:]}
    serve, encoded = blocks[signatures.UINT8_SIGNATURE], blocks[signatures.ENCODED_SIGNATURE]
    assert "inputs['lr_faces']" in serve and "outputs['sr_faces']" in serve
    assert serve.count("dtype: DT_UINT8") == 2
    assert "shape: (-1, 16, 16, 3)" in serve and "shape: (-1, 64, 64, 3)" in serve
    assert "inputs['image_bytes']" in encoded and "outputs['png_bytes']" in encoded
    assert encoded.count("dtype: DT_STRING") == 2 and encoded.count("shape: (-1)") == 2
    assert "outputs['stage_x2']" in blocks[signatures.STAGES_SIGNATURE]


def test_metadata_and_load_upscaler(exported):
    with open(os.path.join(exported["export_dir"], signatures.METADATA_FILE)) as fh:
        metadata = json.load(fh)
    assert (metadata["lr_size"], metadata["hr_size"], metadata["scale"]) == (16, 64, 4)
    upscaler = models.load(exported["export_dir"])
    assert (upscaler.lr_size, upscaler.hr_size, upscaler.scale) == (16, 64, 4)
    assert upscaler.cfg.unet_filters == 8
    assert max_diff(upscaler(exported["faces"]), exported["reference"][-1]) <= 1
    with pytest.raises(ValueError, match=r"expected uint8 LR faces of shape \[N, 16, 16, 3\]"):
        upscaler(exported["faces"][:, :8])


def test_failed_export_leaves_nothing(exported, tmp_path, monkeypatch):
    base = tmp_path / "models" / "stacksr"
    target = base / "2"

    def broken(*args):
        raise RuntimeError("simulated failure after writing")

    monkeypatch.setattr(export_lib, "_smoke_test", broken)
    with pytest.raises(RuntimeError, match="simulated"):
        export_lib.export(exported["model_dir"], str(target))
    assert not target.exists()
    assert os.listdir(base) == []  # no half-written temporary folder either


def test_existing_version_is_refused(exported):
    with pytest.raises(FileExistsError, match="already exists"):
        export_lib.export(exported["model_dir"], exported["export_dir"])


def test_network_interpolation(tiny_run, tmp_path):
    psnr_dir, gan_dir = tiny_run(seed=1), tiny_run(seed=2)
    _, psnr = models.load_generator(psnr_dir)
    _, gan = models.load_generator(gan_dir)
    _, blend = models.load_generator(psnr_dir)
    models.interpolate_generators(blend, gan, 0.25)
    kernels = [(p.numpy(), g.numpy(), b.numpy()) for p, g, b in zip(psnr.weights, gan.weights, blend.weights)
               if p.path.endswith("kernel")]
    assert kernels and not np.allclose(kernels[0][0], kernels[0][1])
    for p, g, b in kernels:
        np.testing.assert_allclose(b, 0.75 * p + 0.25 * g, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="--alpha=1.5"):
        models.interpolate_generators(blend, gan, 1.5)
    other = tiny_run(up_filters=4)
    with pytest.raises(ValueError, match="up_filters"):
        export_lib.export(psnr_dir, str(tmp_path / "x" / "1"), gan_model=other, alpha=0.5)


@pytest.mark.slow
def test_flip_ensemble_export_is_mirror_equivariant(exported, tmp_path):
    """With the flip ensemble the output of a mirrored face is the mirrored output (to rounding);
    the trained shipped model run once is not, and the export keeps the setting."""
    faces = exported["faces"]
    model = zoo.PSNR_MODEL
    assert models.load(model).cfg.flip_ensemble  # shipped with it on
    plain = models.load(model, flip_ensemble=False)
    mirrored = plain(faces[:, :, ::-1])[:, :, ::-1]
    assert max_diff(mirrored, plain(faces)) > 2
    export_dir = str(tmp_path / "flip" / "1")
    metadata = export_lib.export(model, export_dir, flip_ensemble=True)
    assert metadata["config"]["flip_ensemble"] is True
    loaded = models.load(export_dir)
    sr = loaded(faces)
    assert max_diff(loaded(faces[:, :, ::-1])[:, :, ::-1], sr) <= 1
    # ... and it is the mean of the plain output and the mirrored output of the mirrored face
    # (to rounding; pixels where one pass saturates at 0 or 255 may differ a little more).
    off = np.abs(sr - (plain(faces).astype(float) + mirrored.astype(float)) / 2)
    assert np.mean(off <= 1.0) > 0.999 and off.max() <= 4, off.max()


def test_serving_client_mirrors_the_contract():
    sys.path.insert(0, os.path.join(REPO, "tools"))
    import serving_client

    for name in ("UINT8_SIGNATURE", "UINT8_INPUT", "UINT8_OUTPUT", "ENCODED_SIGNATURE", "ENCODED_INPUT",
                 "ENCODED_OUTPUT"):
        assert getattr(serving_client, name) == getattr(signatures, name), name
    body = json.loads(json.dumps(serving_client.encoded_rest_body([b"\x89PNG\x00\xff"])))
    assert body == {"signature_name": "encoded", "instances": [{"b64": "iVBORwD/"}]}
    assert serving_client.png_predictions({"predictions": body["instances"]}) == [b"\x89PNG\x00\xff"]
    faces = np.zeros([2, 16, 16, 3], np.uint8)
    assert np.array(serving_client.uint8_rest_body(faces)["instances"]).shape == (2, 16, 16, 3)
    with pytest.raises(ValueError, match="expected uint8 faces"):
        serving_client.uint8_request(faces.astype(np.float32), model="stacksr")
