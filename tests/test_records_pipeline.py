"""TFRecord schema and the tf.data pipeline over prepared shards."""

import os

import cv2
import numpy as np
import pytest
import tensorflow as tf
from conftest import FIXTURES, tiny_config

from tf_stacksr.data import degrade, pairs, pipeline, prepare, records, shards

SCALES = {"16->64": (16, 32, 64), "32->128": (32, 64, 128), "64->256": (64, 128, 256), "16->128": (16, 32, 64, 128)}


@pytest.fixture(scope="module")
def prepared(prepared_celeba_128):
    """The CelebA fixtures prepared at 128 px: 24 train and 8 test faces in 6 shards."""
    return prepared_celeba_128


def shard_faces(out, split):
    files, _ = shards.split_files(out, split)
    return [ex["pixels"] for f in files for ex in records.read_shard(f)]


def as_uint8(x):
    return np.round((np.asarray(x) + 1.0) * 127.5).astype(np.int32)


def test_example_round_trip_keeps_every_field():
    pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    ok, png = cv2.imencode(".png", pixels[..., ::-1])
    landmarks, matrix = np.arange(10, dtype=np.float32).reshape(5, 2), np.array([[1.5, 0.1, 3], [-0.1, 1.5, 4]])
    serialized = records.encode_example(png.tobytes(), source="a/b.jpg", identity="4930", landmarks=landmarks,
                                        matrix=matrix, score=1.25, size=32)
    parsed = {k: v.numpy() for k, v in records.parse_example(tf.constant(serialized)).items()}
    assert parsed["source"] == b"a/b.jpg" and parsed["identity"] == b"4930" and parsed["size"] == 32
    np.testing.assert_allclose(parsed["landmarks"], landmarks.reshape(10))
    np.testing.assert_allclose(parsed["matrix"], matrix.reshape(6), rtol=1e-6)
    assert parsed["score"] == pytest.approx(1.25)
    np.testing.assert_array_equal(records.decode_face(tf.constant(parsed["image"])).numpy(), pixels)


def test_write_shard_is_atomic(tmp_path):
    path = str(tmp_path / "train-00000.tfrecord")

    def failing():
        yield b"one"
        raise RuntimeError("interrupted mid-shard")

    with pytest.raises(RuntimeError):
        records.write_shard(path, failing())
    assert not os.path.exists(path)
    assert records.write_shard(path, [b"a", b"b"]) == 2
    assert [r.numpy() for r in tf.data.TFRecordDataset(path)] == [b"a", b"b"]


def test_manifest_and_shards_agree(prepared):
    out, manifest = prepared
    for split, entry in manifest["splits"].items():
        files, n = shards.split_files(out, split)
        assert n == entry["examples"] == sum(1 for _ in tf.data.TFRecordDataset(files))
    assert manifest["splits"]["train"]["examples"] + manifest["splits"]["test"]["examples"] == 32


@pytest.mark.parametrize("name", sorted(SCALES))
def test_pairs_have_exact_shapes_and_ranges_at_every_scale(prepared, name):
    out, _ = prepared
    stage_sizes = SCALES[name]
    hr = stage_sizes[-1]
    inputs, targets = next(iter(pipeline.training_dataset(out, stage_sizes, global_batch_size=4, seed=0)))
    assert inputs.shape == (4, hr, hr, 3) and inputs.dtype == tf.float32
    assert [tuple(t.shape) for t in targets] == [(4, s, s, 3) for s in stage_sizes]
    for t in (inputs, *targets):
        assert -1.0 <= float(tf.reduce_min(t)) < -0.5 and 0.5 < float(tf.reduce_max(t)) <= 1.0
    lr = targets[0].numpy()
    np.testing.assert_allclose((lr + 1) * 127.5, np.round((lr + 1) * 127.5), atol=1e-3)  # uint8 levels
    # Independent reference: OpenCV's area downscale of the HR target is close to the LR target.
    reference = np.stack([cv2.resize(h, (stage_sizes[0],) * 2, interpolation=cv2.INTER_AREA) for h in targets[-1].numpy()])
    assert np.abs(reference - lr).mean() < 0.03
    eval_inputs, eval_targets = next(iter(pipeline.eval_dataset(out, stage_sizes, batch_size=3)))
    assert eval_inputs.shape == (3, hr, hr, 3) and [t.shape[1] for t in eval_targets] == list(stage_sizes)


def assert_one_epoch_shows_every_face_once(ds, faces, batch):
    """`faces` (uint8) each appear exactly once, as is or mirrored, in the first len(faces) examples."""
    n = len(faces)
    seen = [as_uint8(hr) for _, t in ds.take(n // batch) for hr in t[-1].numpy()]
    matches = []
    for image in seen:
        hits = [i for i, f in enumerate(faces) if np.array_equal(image, f) or np.array_equal(image, f[:, ::-1])]
        assert len(hits) == 1
        matches.append(hits[0])
    assert sorted(matches) == list(range(n))
    mirrored = sum(np.array_equal(s, faces[m][:, ::-1]) for s, m in zip(seen, matches))
    assert 0 < mirrored < n, "random flip should mirror some faces and not others"


def test_one_epoch_shows_every_train_face_once_possibly_mirrored(prepared):
    out, manifest = prepared
    faces = shard_faces(out, "train")
    assert len(faces) == manifest["splits"]["train"]["examples"]
    assert_one_epoch_shows_every_face_once(pipeline.training_dataset(out, (32, 64, 128), global_batch_size=4, seed=5), faces, 4)


@pytest.fixture(scope="module")
def prepared_lfw(tmp_path_factory):
    """The LFW fixtures prepared at 128 px, all in the train split: a second dataset to pool."""
    out = str(tmp_path_factory.mktemp("prepared_lfw"))
    prepare.prepare(os.path.join(FIXTURES, "lfw"), out,
                    prepare.PrepareOptions(size=128, split="none", shard_size=2, workers=1), progress=False)
    return out


def test_pooled_folders_show_every_train_face_of_each_once_and_resume(prepared, prepared_lfw):
    out, _ = prepared
    faces = shard_faces(out, "train") + shard_faces(prepared_lfw, "train")
    assert len(shard_faces(prepared_lfw, "train")) >= 2
    pooled = f"{out}, {prepared_lfw}"
    stages = (32, 64, 128)
    ds = pipeline.training_dataset(pooled, stages, global_batch_size=2, seed=5)
    assert_one_epoch_shows_every_face_once(ds, faces, 2)
    full = [b.numpy() for b, _ in ds.take(16)]  # 32 examples cross the pooled epoch boundary
    resumed = [b.numpy() for b, _ in pipeline.training_dataset(pooled, stages, global_batch_size=2, seed=5, start_step=13).take(3)]
    for k, batch in enumerate(resumed):
        np.testing.assert_array_equal(batch, full[13 + k])
    # Validation samples stay on the first folder.
    first = np.concatenate([t[-1].numpy() for _, t in pipeline.eval_dataset(out, stages, batch_size=4)])
    pooled_eval = np.concatenate([t[-1].numpy() for _, t in pipeline.eval_dataset(pooled, stages, batch_size=4)])
    np.testing.assert_array_equal(pooled_eval, first)


def test_pooled_photo_folders_show_the_second_folders_faces():
    celeba, ffhq = os.path.join(FIXTURES, "celeba"), os.path.join(FIXTURES, "ffhq")
    n = len(pipeline.list_images(celeba)) + len(pipeline.list_images(ffhq))
    ds = pipeline.training_dataset(f"{celeba},{ffhq}", (16, 32, 64), global_batch_size=2, seed=1)
    seen = np.concatenate([t[-1].numpy() for _, t in ds.take(n // 2)])
    for path in pipeline.list_images(ffhq):
        face = pipeline.load_face(tf.constant(path), 64).numpy()
        assert min(min(np.abs(s - face).max(), np.abs(s - face[:, ::-1]).max()) for s in seen) < 1e-5, path


def test_pooling_prepared_and_photo_folders_is_refused_naming_both(prepared):
    out, _ = prepared
    photos = os.path.join(FIXTURES, "celeba")
    with pytest.raises(ValueError, match=f"mixes prepared shard folders and photo folders.*{photos} \\(photo folder\\)"):
        pipeline.training_dataset(f"{out},{photos}", (16, 32, 64), global_batch_size=2)


def test_resume_at_any_step_gives_the_same_batches(prepared):
    out, _ = prepared
    stages = (16, 32, 64)
    full = [b.numpy() for b, _ in pipeline.training_dataset(out, stages, global_batch_size=5, seed=3).take(12)]
    for start in (1, 4, 7):  # 7 * 5 = 35 crosses the 24-face epoch boundary
        resumed = [b.numpy() for b, _ in pipeline.training_dataset(out, stages, global_batch_size=5, seed=3, start_step=start).take(3)]
        for k, batch in enumerate(resumed):
            np.testing.assert_array_equal(batch, full[start + k])
    other = next(iter(pipeline.training_dataset(out, stages, global_batch_size=5, seed=4)))[0].numpy()
    assert not np.array_equal(other, full[0])


def test_order_ignores_the_global_seed_that_keras_sets(prepared):
    out, _ = prepared
    make = lambda: pipeline.training_dataset(out, (16, 32, 64), global_batch_size=4, seed=3, start_step=5)  # noqa: E731
    before = next(iter(make()))[0].numpy()
    tf.random.set_seed(1234)  # what keras.utils.set_random_seed does in the Trainer
    try:
        after = next(iter(make()))[0].numpy()
    finally:
        tf.random.set_seed(None)
    np.testing.assert_array_equal(before, after)


def test_input_pipelines_split_the_global_batches(prepared):
    out, _ = prepared
    stages = (16, 32, 64)
    single = [b.numpy() for b, _ in pipeline.training_dataset(out, stages, global_batch_size=8, seed=1, start_step=2).take(3)]
    parts = []
    for pid in range(2):
        ctx = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pid, num_replicas_in_sync=2)
        parts.append([b.numpy() for b, _ in pipeline.training_dataset(out, stages, global_batch_size=8, seed=1, start_step=2, input_context=ctx).take(3)])
    for step in range(3):
        assert parts[0][step].shape == (4, 64, 64, 3)
        np.testing.assert_array_equal(np.concatenate([parts[0][step], parts[1][step]]), single[step])


def test_distribute_datasets_from_function_feeds_the_same_batches(prepared):
    out, _ = prepared
    stages = (16, 32, 64)
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    dist = strategy.distribute_datasets_from_function(
        lambda ctx: pipeline.training_dataset(out, stages, global_batch_size=4, seed=1, input_context=ctx))
    inputs, targets = next(iter(dist))
    expected = next(iter(pipeline.training_dataset(out, stages, global_batch_size=4, seed=1)))
    np.testing.assert_array_equal(inputs.numpy(), expected[0].numpy())
    assert [t.shape[1] for t in targets] == list(stages)


def test_eval_is_fixed_order_unaugmented_and_complete(prepared):
    out, manifest = prepared
    faces = shard_faces(out, "test")
    stages = (32, 64, 128)
    runs = [np.concatenate([as_uint8(t[-1]) for _, t in pipeline.eval_dataset(out, stages, batch_size=3)]) for _ in range(2)]
    np.testing.assert_array_equal(runs[0], runs[1])
    np.testing.assert_array_equal(runs[0], np.stack(faces))
    assert len(faces) == manifest["splits"]["test"]["examples"]
    limited = sum(int(x.shape[0]) for x, _ in pipeline.eval_dataset(out, stages, batch_size=3, limit=4))
    assert limited == 4


def test_missing_split_is_a_clear_error(prepared):
    out, _ = prepared
    with pytest.raises(ValueError, match="no 'validation' faces"):
        shards.split_files(out, "validation")


def test_realistic_degradation_is_deterministic_and_keeps_clean_targets(prepared):
    out, _ = prepared
    stages = (32, 64, 128)
    kwargs = dict(global_batch_size=4, seed=2)
    clean_x, clean_t = next(iter(pipeline.training_dataset(out, stages, **kwargs)))
    runs = [next(iter(pipeline.training_dataset(out, stages, degradation=degrade.Degradation(), **kwargs))) for _ in range(2)]
    np.testing.assert_array_equal(runs[0][0].numpy(), runs[1][0].numpy())
    for a, b in zip(runs[0][1], clean_t):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    x = runs[0][0].numpy()
    assert x.shape == clean_x.shape and x.min() >= -1 and x.max() <= 1
    assert 0.01 < np.abs(x - clean_x.numpy()).mean() < 0.3
    # Blur and noise off, bicubic kernel: the LR face is the clean bicubic LR through one JPEG round trip.
    jpeg_only = degrade.Degradation(blur_probability=0.0, noise_probability=0.0, jpeg_probability=1.0,
                                    jpeg_quality=(90, 90), kernels=("bicubic",))
    hr = clean_t[-1][0]
    lr = degrade.degrade_lr(hr, 32, jpeg_only, tf.constant([7, 7], tf.int64))
    reference = tf.io.decode_jpeg(tf.io.encode_jpeg(pairs.float_to_uint8(clean_t[0][0]), quality=90))
    assert np.abs(as_uint8(lr) - reference.numpy().astype(np.int32)).max() <= 1
    with pytest.raises(ValueError, match="jpeg_quality"):
        degrade.Degradation(jpeg_quality=(50, 120))
    with pytest.raises(ValueError, match="kernels"):
        degrade.Degradation(kernels=("lanczos7",))


def test_blur_is_a_per_channel_correlation_with_mirrored_edges():
    """The blur step against SciPy's correlation (edges reflected as TF's SYMMETRIC padding)."""
    from scipy import ndimage

    rng = np.random.default_rng(0)
    image = rng.uniform(-1, 1, (40, 30, 3)).astype(np.float32)
    kernel = rng.uniform(0, 1, (degrade.KERNEL_SIZE,) * 2).astype(np.float32)  # not symmetric: catches a flip
    got = degrade._blur(tf.constant(image), tf.constant(kernel)).numpy()
    expected = np.stack([ndimage.correlate(image[..., c], kernel, mode="reflect") for c in range(3)], -1)
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_realistic_degradation_draws_each_step_per_example(prepared):
    """Every step off gives the clean LR exactly; each kernel is the photo tools' resize; the
    blur, noise and JPEG steps happen at about their probabilities over many examples."""
    out, _ = prepared
    _, clean_t = next(iter(pipeline.training_dataset(out, (32, 64, 128), global_batch_size=1, seed=0)))
    hr, clean_lr = clean_t[-1][0], as_uint8(clean_t[0][0])
    off = dict(blur_probability=0.0, noise_probability=0.0, jpeg_probability=0.0)
    for seed in range(3):
        got = degrade.degrade_lr(hr, 32, degrade.Degradation(kernels=("bicubic",), **off), tf.constant([seed, 1], tf.int64))
        np.testing.assert_array_equal(as_uint8(got), clean_lr)
    area = as_uint8(degrade.degrade_lr(hr, 32, degrade.Degradation(kernels=("area",), **off), tf.constant([0, 1], tf.int64)))
    expected = as_uint8(tf.clip_by_value(tf.image.resize(hr, [32, 32], method="area"), -1, 1))
    np.testing.assert_array_equal(area, expected)
    assert np.abs(area - clean_lr).max() > 0
    changed = {}
    for step in ("blur", "noise", "jpeg"):
        only = degrade.Degradation(kernels=("bicubic",), **{**off, f"{step}_probability": 0.5})
        draw = tf.function(lambda seed, only=only: degrade.degrade_lr(hr, 32, only, seed))  # traced once
        outputs = [as_uint8(draw(tf.constant([s, 3], tf.int64))) for s in range(60)]
        changed[step] = np.mean([np.abs(o - clean_lr).max() > 1 for o in outputs])
    assert all(0.3 < rate < 0.7 for rate in changed.values()), changed


@pytest.mark.slow
def test_training_entry_reads_prepared_shards(prepared, tmp_path):
    """train_lib.train on a shard folder: train split for steps, test split for validation."""
    from tf_stacksr.training import train_lib

    out, _ = prepared
    cfg = tiny_config(tmp_path / "run", data_dir=out, train_steps=2, log_every=1, sample_every=2, save_every=2)
    terms = train_lib.train(cfg)
    assert np.isfinite(terms["g_total"]) and os.path.isdir(tmp_path / "run" / "checkpoints")
    assert os.listdir(tmp_path / "run" / "samples") == ["step_0000002.png"]
