"""Random shift/zoom augmentation: the warp against closed forms, and its place in the pipeline."""

import os

import numpy as np
import pytest
import tensorflow as tf
from conftest import FIXTURES

from tf_stacksr.data import jitter, pairs, pipeline, prepare


def smooth_face(size=64, seed=0):
    """A band-limited random image: resampling it twice changes it by well under a grey level."""
    noise = tf.random.stateless_uniform([1, size // 4, size // 4, 3], seed=[seed, 1], minval=-0.6, maxval=0.6)
    return tf.image.resize(noise, [size, size], method="bicubic")[0]


def test_integer_shift_is_a_roll_and_no_warp_is_identity():
    face = smooth_face()
    np.testing.assert_allclose(jitter.warp(face, 0.0, 0.0, 1.0).numpy(), face.numpy(), atol=0.01)
    moved = jitter.warp(face, 3.0, -2.0, 1.0).numpy()
    rolled = np.roll(face.numpy(), (-2, 3), axis=(0, 1))
    np.testing.assert_allclose(moved[6:-6, 6:-6], rolled[6:-6, 6:-6], atol=0.01)


def test_zoom_about_the_centre_follows_the_mapping_on_a_ramp():
    """On f(x, y) = a x + b y the output must be f((x - c) / z + c - dx, (y - c) / z + c - dy)."""
    size, z, dx, dy = 64, 1.08, 0.5, -1.25
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    ramp = np.stack([0.02 * x - 0.6, 0.015 * y - 0.5, 0.01 * (x + y) - 0.6], axis=-1)
    out = jitter.warp(tf.constant(ramp), dx, dy, z).numpy()
    c = (size - 1) / 2
    xs, ys = (x - c) / z + c - dx, (y - c) / z + c - dy
    expected = np.stack([0.02 * xs - 0.6, 0.015 * ys - 0.5, 0.01 * (xs + ys) - 0.6], axis=-1)
    np.testing.assert_allclose(out[8:-8, 8:-8], expected[8:-8, 8:-8], atol=2e-3)


def test_draws_are_keyed_bounded_and_off_by_default():
    options = jitter.Jitter(shift=2.0, zoom=0.05)
    draws = np.array([[float(v) for v in options.draw(tf.constant([0, i], tf.int64))] for i in range(200)])
    again = [float(v) for v in options.draw(tf.constant([0, 7], tf.int64))]
    np.testing.assert_array_equal(draws[7], again)
    assert np.abs(draws[:, :2]).max() <= 2.0 and np.abs(draws[:, 2] - 1).max() <= 0.05
    assert draws[:, 0].std() > 0.8 and draws[:, 2].std() > 0.02, "draws should spread over their ranges"
    face = smooth_face()
    assert jitter.apply(face, jitter.Jitter(), tf.constant([0, 1], tf.int64)) is face
    for bad, flag in ((dict(shift=-1.0), "jitter_shift"), (dict(zoom=0.5), "jitter_zoom")):
        with pytest.raises(ValueError, match=flag):
            jitter.Jitter(**bad)


@pytest.mark.slow
def test_pipeline_jitters_targets_and_inputs_together_and_resumes_exactly(tmp_path):
    out = str(tmp_path / "prepared")
    prepare.prepare(os.path.join(FIXTURES, "celeba"), out,
                    prepare.PrepareOptions(size=64, split="identity", test_fraction=0.25, shard_size=8, workers=1),
                    progress=False)
    stages, options = (16, 32, 64), jitter.Jitter(shift=2.0, zoom=0.05)
    make = lambda start: pipeline.training_dataset(out, stages, global_batch_size=4, seed=1, start_step=start, jitter=options)  # noqa: E731
    plain_x, plain_t = next(iter(pipeline.training_dataset(out, stages, global_batch_size=4, seed=1)))
    batches = [(x.numpy(), [t.numpy() for t in ts]) for x, ts in make(0).take(3)]
    x, targets = batches[0]
    assert 0.005 < np.abs(targets[-1] - plain_t[-1].numpy()).mean() < 0.2, "faces should move, a little"
    # The input and every stage target still come from one (jittered) HR face.
    for t in targets[:-1]:  # the LR target is quantised to uint8 levels
        np.testing.assert_allclose(t, pairs.downscale(targets[-1], t.shape[1]).numpy(), atol=1.01 / 255)
    np.testing.assert_allclose(x, pairs.upscale(targets[0], 64).numpy(), atol=1e-5)
    resumed_x, _ = next(iter(make(2)))
    np.testing.assert_array_equal(resumed_x.numpy(), batches[2][0])
    assert plain_x.shape == x.shape


def test_crop_cuts_the_box_at_the_faces_own_resolution():
    """A full box leaves the face as it is; a box on a ramp samples the ramp where the box says."""
    face = smooth_face(128)
    np.testing.assert_allclose(jitter.crop(face, tf.constant([0.0, 0.0, 1.0, 1.0])).numpy(), face.numpy(), atol=1e-6)
    size = 128
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    ramp = np.stack([0.01 * x - 0.6, 0.008 * y - 0.5, 0.005 * (x + y) - 0.6], axis=-1)
    out = jitter.crop(tf.constant(ramp), tf.constant([0.2, 0.2, 0.8, 0.8])).numpy()
    assert out.shape == ramp.shape
    xs, ys = 0.2 * (size - 1) + 0.6 * x, 0.2 * (size - 1) + 0.6 * y  # crop_and_resize's sampling of the box
    expected = np.stack([0.01 * xs - 0.6, 0.008 * ys - 0.5, 0.005 * (xs + ys) - 0.6], axis=-1)
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_crop_boxes_are_keyed_centred_squares_within_the_range():
    options = jitter.Jitter(crop_min=0.6)
    boxes = np.array([options.crop_box(tf.constant([3, i], tf.int64)).numpy() for i in range(300)])
    np.testing.assert_array_equal(boxes[11], options.crop_box(tf.constant([3, 11], tf.int64)).numpy())
    sides = boxes[:, 2] - boxes[:, 0]
    np.testing.assert_allclose(boxes[:, 0] + boxes[:, 2], 1.0, atol=1e-6)  # centred
    np.testing.assert_allclose(sides, boxes[:, 3] - boxes[:, 1], atol=1e-6)  # square
    assert sides.min() >= 0.6 - 1e-6 and sides.max() <= 1.0
    # log-uniform: half of the draws below the geometric middle of the range
    assert 0.4 < np.mean(sides < np.sqrt(0.6)) < 0.6 and sides.min() < 0.62 and sides.max() > 0.98
    assert jitter.Jitter().crop_box(tf.constant([3, 1], tf.int64)) is None
    for bad in (0.2, 1.1):
        with pytest.raises(ValueError, match="jitter_crop"):
            jitter.Jitter(crop_min=bad)


def test_pipeline_crops_prepared_faces_before_resizing_them(prepared_celeba_128):
    """With --jitter_crop every target is the prepared 128 px face cut by its keyed box and then
    resized to 64 px: the same view as cutting the already resized face, but sharper."""
    out, _ = prepared_celeba_128
    stages, options = (16, 32, 64), jitter.Jitter(crop_min=0.5)
    _, plain = next(iter(pipeline.training_dataset(out, stages, global_batch_size=8, seed=1)))
    _, cropped = next(iter(pipeline.training_dataset(out, stages, global_batch_size=8, seed=1, jitter=options)))
    plain, cropped = plain[-1].numpy(), cropped[-1].numpy()
    energy = lambda a: np.mean(np.diff(a, axis=0) ** 2) + np.mean(np.diff(a, axis=1) ** 2)  # noqa: E731
    for i in range(8):
        box = options.crop_box(tf.constant([1, i], tf.int64)).numpy()
        late = jitter.crop(tf.constant(plain[i]), tf.constant(box)).numpy()  # the same face, the same flip
        assert np.abs(cropped[i] - late).mean() < 0.06
        assert energy(cropped[i]) > 1.15 * energy(late)
