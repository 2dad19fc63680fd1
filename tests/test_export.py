"""SavedModel export: round trip in a fresh process, signatures, PredictRequest protos, bad inputs."""

import inspect
import io
import json
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
import tensorflow as tf
from conftest import FIXTURES, REPO
from PIL import Image

from tf_stacksr import models
from tf_stacksr.models import zoo
from tf_stacksr.serving import export_lib, signatures
from tf_stacksr.serving.upscalers import stages_from_uint8

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
    """The tiny model exported with every stage and at most 4 faces a request, four real LR faces,
    and the Keras model's outputs on them."""
    tmp = tmp_path_factory.mktemp("export")
    model_dir = tiny_run()
    export_dir = str(tmp / "models" / "stacksr" / "1")
    export_lib.export(model_dir, export_dir, all_stages=True, max_batch=4)
    faces = real_lr_faces(16)
    return {"model_dir": model_dir, "export_dir": export_dir, "faces": faces,
            "reference": keras_reference(model_dir, faces)}


@pytest.fixture(scope="module")
def loaded(exported):
    """The export loaded once in this process, as a server would."""
    return tf.saved_model.load(exported["export_dir"])


@pytest.fixture(scope="module")
def served(exported, tmp_path_factory):
    """What tests/serving_probe.py gets from the export in a fresh process: its outputs and error messages."""
    tmp = tmp_path_factory.mktemp("serving_probe")
    bomb = png_declaring(12000, 12000, rows=12000)  # 420 KB of PNG, 432 MB of pixels
    assert len(bomb) < 500_000
    np.savez(tmp / "inputs.npz", lr_faces=exported["faces"], bomb=np.frombuffer(bomb, np.uint8))
    subprocess.run([sys.executable, os.path.join(REPO, "tests", "serving_probe.py"), exported["export_dir"],
                    str(tmp / "inputs.npz"), str(tmp / "results.npz")], check=True, env=ENV, cwd=str(tmp))
    results = dict(np.load(tmp / "results.npz"))
    errors = json.loads(str(results.pop("errors")))
    return {"results": results, "errors": errors}


def png_declaring(height: int, width: int, rows: int = 1) -> bytes:
    """A valid PNG header declaring `height` x `width` RGB pixels, with only `rows` rows of (black) data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor = zlib.compressobj(9)
    row = b"\0" * (1 + 3 * width)
    idat = b"".join(compressor.compress(row) for _ in range(rows)) + compressor.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def declaring(fmt: str, height: int, width: int, face: np.ndarray) -> bytes:
    """`face` encoded as `fmt` (JPEG, BMP or GIF), its header patched to declare `height` x `width` pixels."""
    buffer = io.BytesIO()
    Image.fromarray(face).save(buffer, format=fmt)
    data = bytearray(buffer.getvalue())
    if fmt == "JPEG":
        sof = data.index(b"\xff\xc0")  # baseline frame header: marker, length, precision, height, width
        data[sof + 5: sof + 9] = struct.pack(">HH", height, width)
    elif fmt == "BMP":
        data[18:26] = struct.pack("<ii", width, height)
    else:  # GIF: the logical screen, which TF allocates for every frame
        data[6:10] = struct.pack("<HH", width, height)
    return bytes(data)


def run_encoded(loaded, images: list[bytes]):
    return loaded.signatures[signatures.ENCODED_SIGNATURE](
        **{signatures.ENCODED_INPUT: tf.constant(images, tf.string)})


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
    assert "image 0 declares 8x16 pixels" in errors["error_encoded_size"]
    assert "expected a 1-D batch of encoded images" in errors["error_encoded_rank"]
    assert "NO ERROR" != errors["error_encoded_corrupt"]
    for case in ("good", "grey", "rgba_and_jpeg"):  # every documented input format is accepted
        assert errors[f"error_encoded_{case}"] == "NO ERROR", case


@pytest.mark.slow
def test_request_limits_hold_in_a_fresh_process(served):
    """What TF Serving would run: a huge declared image is refused from its header without its
    memory, the batch is capped, and an empty batch returns an empty batch."""
    errors = served["errors"]
    for where in ("bomb_error", "error_encoded_bomb"):
        assert "image_bytes: expected encoded images of 16x16 pixels" in errors[where], errors[where]
        assert "image 0 declares 12000x12000 pixels" in errors[where], errors[where]
    assert errors["bomb_rss_growth_mb"] < 100, errors["bomb_rss_growth_mb"]  # decoding it would take 432 MB
    assert "lr_faces: at most 4 faces per request (export --max_batch); got 5" in errors["error_session_batch"]
    assert "image_bytes: at most 4 images per request (export --max_batch); got 5" in errors["error_encoded_batch"]
    assert errors["error_session_empty"] == errors["error_encoded_empty"] == "NO ERROR"
    assert served["results"]["empty"].shape == (0, 64, 64, 3)


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
    assert (metadata["lr_size"], metadata["hr_size"], metadata["scale"], metadata["max_batch"]) == (16, 64, 4, 4)
    upscaler = models.load(exported["export_dir"])
    assert (upscaler.lr_size, upscaler.hr_size, upscaler.scale) == (16, 64, 4)
    assert upscaler.cfg.unet_filters == 8
    assert max_diff(upscaler(exported["faces"]), exported["reference"][-1]) <= 1
    # more faces than the export's max_batch (4) go in slices; none gives none
    nine = np.concatenate([exported["faces"]] * 2 + [exported["faces"][:1]])
    assert max_diff(upscaler(nine), np.concatenate([exported["reference"][-1]] * 2 + [exported["reference"][-1][:1]])) <= 1
    assert upscaler(exported["faces"][:0]).shape == (0, 64, 64, 3)
    with pytest.raises(ValueError, match=r"expected uint8 LR faces of shape \[N, 16, 16, 3\]"):
        upscaler(exported["faces"][:, :8])


@pytest.mark.slow
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


def test_max_batch_default_and_bad_values(exported, tmp_path):
    from tf_stacksr import export as export_cli

    assert signatures.MAX_BATCH == 256
    assert export_cli.FLAGS["max_batch"].default == signatures.MAX_BATCH
    assert inspect.signature(export_lib.export).parameters["max_batch"].default == signatures.MAX_BATCH
    with pytest.raises(ValueError, match=r"--max_batch=0: expected a positive number of faces per request"):
        export_lib.export(exported["model_dir"], str(tmp_path / "m" / "1"), max_batch=0)


def test_batch_branches_default_and_bad_values(exported, tmp_path):
    from tf_stacksr import export as export_cli

    with open(os.path.join(exported["export_dir"], signatures.METADATA_FILE)) as fh:
        assert json.load(fh)["batch_branches"] == signatures.BATCH_BRANCHES == 2
    assert export_cli.FLAGS["batch_branches"].default == signatures.BATCH_BRANCHES
    with pytest.raises(ValueError, match=r"--batch_branches=0: expected a positive number of parts per batch"):
        export_lib.export(exported["model_dir"], str(tmp_path / "m" / "1"), batch_branches=0)


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7])
def test_batch_branches_keep_every_face_in_place(exported, count):
    """A batch cut into 3 branches gives each face the output the NumPy-written reference pipeline
    gives it (to 1 grey level), for batches smaller than, equal to and not divisible by 3."""
    faces = np.concatenate([exported["faces"], exported["faces"][::-1]])[:count]
    reference = np.concatenate([exported["reference"][-1], exported["reference"][-1][::-1]])[:count]
    cfg, generator = models.load_generator(exported["model_dir"])
    run = tf.function(lambda lr: stages_from_uint8(generator, lr, cfg.hr_size, branches=3)[-1])
    assert max_diff(run(tf.constant(faces)).numpy(), reference) <= 1


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
                 "ENCODED_OUTPUT", "MAX_BATCH"):
        assert getattr(serving_client, name) == getattr(signatures, name), name
    body = json.loads(json.dumps(serving_client.encoded_rest_body([b"\x89PNG\x00\xff"])))
    assert body == {"signature_name": "encoded", "instances": [{"b64": "iVBORwD/"}]}
    assert serving_client.png_predictions({"predictions": body["instances"]}) == [b"\x89PNG\x00\xff"]
    faces = np.zeros([2, 16, 16, 3], np.uint8)
    assert np.array(serving_client.uint8_rest_body(faces)["instances"]).shape == (2, 16, 16, 3)
    with pytest.raises(ValueError, match="expected uint8 faces"):
        serving_client.uint8_request(faces.astype(np.float32), model="stacksr")


def test_encoded_checks_the_declared_size_before_decoding(exported, loaded):
    """A small file declaring a huge image is refused from its header, never decoded (every format)."""
    face = exported["faces"][0]
    good = tf.io.encode_png(face).numpy()
    expected = r"image_bytes: expected encoded images of 16x16 pixels \(JPEG, PNG, BMP or GIF\)"
    cases = {"PNG": png_declaring(12000, 12000), "JPEG": declaring("JPEG", 4000, 3000, face),
             "BMP": declaring("BMP", 4000, 3000, face), "GIF": declaring("GIF", 4000, 3000, face)}
    for fmt, data in cases.items():
        with pytest.raises(tf.errors.InvalidArgumentError, match=expected) as info:
            run_encoded(loaded, [good, data])
        message = str(info.value)
        declared = "12000x12000" if fmt == "PNG" else "4000x3000"
        assert f"image 1 declares {declared} pixels (height x width)" in message, (fmt, message)
    webp = io.BytesIO()
    Image.fromarray(face).save(webp, format="WEBP")
    with pytest.raises(tf.errors.InvalidArgumentError, match="image_bytes: expected JPEG, PNG, BMP or GIF files"):
        run_encoded(loaded, [webp.getvalue()])


def test_encoded_caps_gif_bytes(exported, loaded):
    """GIF frames are decompressed before any size check (LZW, up to ~2700x): a GIF is capped in bytes."""
    face = exported["faces"][0]
    small = declaring("GIF", 16, 16, face)
    assert run_encoded(loaded, [small])[signatures.ENCODED_OUTPUT].shape == (1,)
    big = io.BytesIO()
    Image.fromarray(np.zeros([16, 16, 3], np.uint8)).save(big, format="GIF", comment=b"x" * 250 * 40)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"image_bytes: a GIF of 16x16 pixels takes at most 2560 bytes"):
        run_encoded(loaded, [big.getvalue()])


def test_batch_size_is_capped_in_every_signature(exported, loaded):
    faces = np.concatenate([exported["faces"], exported["faces"][:1]])  # 5 > --max_batch=4
    for name in (signatures.UINT8_SIGNATURE, signatures.STAGES_SIGNATURE):
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"lr_faces: at most 4 faces per request"
                                                                 r" \(export --max_batch\); got 5"):
            loaded.signatures[name](lr_faces=tf.constant(faces))
    pngs = [tf.io.encode_png(face).numpy() for face in faces]
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"image_bytes: at most 4 images per request"):
        run_encoded(loaded, pngs)
    assert loaded.signatures[signatures.UINT8_SIGNATURE](lr_faces=tf.constant(faces[:4]))["sr_faces"].shape[0] == 4


def test_empty_batch_returns_an_empty_batch(exported, loaded):
    empty = tf.zeros([0, 16, 16, 3], tf.uint8)
    assert loaded.signatures[signatures.UINT8_SIGNATURE](lr_faces=empty)["sr_faces"].shape == (0, 64, 64, 3)
    stages = loaded.signatures[signatures.STAGES_SIGNATURE](lr_faces=empty)
    assert {k: tuple(v.shape) for k, v in stages.items()} == {
        "stage_lr": (0, 16, 16, 3), "stage_x2": (0, 32, 32, 3), "stage_x4": (0, 64, 64, 3)}
    assert run_encoded(loaded, [])[signatures.ENCODED_OUTPUT].shape == (0,)


def test_serving_client_splits_requests_at_max_batch(tmp_path, monkeypatch):
    sys.path.insert(0, os.path.join(REPO, "tools"))
    import serving_client

    paths = []
    for k in range(5):
        paths.append(str(tmp_path / f"face{k}.png"))
        with open(paths[-1], "wb") as fh:
            fh.write(b"png %d" % k)
    sent = []

    def fake_rest(base_url, model, body, version=None):
        sent.append(len(body["instances"]))
        return {"predictions": body["instances"]}  # echo: each output is its input

    monkeypatch.setattr(serving_client, "predict_rest", fake_rest)
    assert serving_client.main(["--rest=http://x", "--max_batch=2", "-o", str(tmp_path / "out"), *paths]) == 0
    assert sent == [2, 2, 1]
    assert open(tmp_path / "out" / "face4.png", "rb").read() == b"png 4"
