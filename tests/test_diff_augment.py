"""DiffAugment: each transform against a NumPy reference, one draw shared by condition and image."""

import numpy as np
import pytest
import tensorflow as tf

from tf_stacksr.data import diff_augment

KEY = diff_augment.draw_key(seed=0, step=1, replica=0, call=0)


def numpy_translate(x, dy, dx):
    out = np.zeros_like(x)
    h, w = x.shape[1:3]
    for b in range(x.shape[0]):
        for i in range(h):
            for j in range(w):
                if 0 <= i - dy[b] < h and 0 <= j - dx[b] < w:
                    out[b, i, j] = x[b, i - dy[b], j - dx[b]]
    return out


def test_parse_policy():
    assert diff_augment.parse_policy("") == ()
    assert diff_augment.parse_policy("color, cutout") == ("color", "cutout")
    for bad in ("colour", "color,color", "translation,flip"):
        with pytest.raises(ValueError, match="--diff_augment"):
            diff_augment.parse_policy(bad)


def test_translate_matches_numpy():
    x = np.random.default_rng(0).normal(size=(4, 9, 7, 2)).astype(np.float32)
    dy, dx = np.array([0, 2, -3, 9]), np.array([1, -1, 0, -2])
    got = diff_augment.translate(tf.constant(x), tf.constant(dy, tf.int32), tf.constant(dx, tf.int32)).numpy()
    np.testing.assert_array_equal(got, numpy_translate(x, dy, dx))


def test_cutout_zeroes_the_square_only():
    x = np.ones((3, 8, 8, 1), np.float32)
    got = diff_augment.cutout(tf.constant(x), tf.constant([4, 0, 8]), tf.constant([4, 7, 3]), 4).numpy()[..., 0]
    expected = np.ones((3, 8, 8), np.float32)
    expected[0, 2:6, 2:6] = 0
    expected[1, 0:2, 5:8] = 0  # clipped at the top and right edges
    expected[2, 6:8, 1:5] = 0
    np.testing.assert_array_equal(got, expected)


def test_off_is_identity_and_shapes_are_kept():
    a, b = tf.zeros([2, 8, 8, 3]), tf.ones([2, 8, 8, 3])
    assert diff_augment.augment([a, b], (), KEY) == [a, b]
    out = diff_augment.augment([a, b], diff_augment.POLICIES, KEY)
    assert [t.shape for t in out] == [a.shape, b.shape]


def test_condition_and_image_get_the_same_draw():
    tf.random.set_seed(1)
    x = tf.random.uniform([16, 16, 16, 3], -1, 1)
    cond, image = diff_augment.augment([x, x], diff_augment.POLICIES, KEY)
    np.testing.assert_allclose(cond.numpy(), image.numpy(), atol=1e-6)
    assert np.abs(cond.numpy() - x.numpy()).mean() > 0.05  # and the draw did something


def test_translation_is_one_of_the_allowed_shifts_per_example():
    tf.random.set_seed(2)
    x = np.random.default_rng(1).normal(size=(32, 16, 16, 3)).astype(np.float32)
    (out,) = diff_augment.augment([tf.constant(x)], ("translation",), KEY)
    out = out.numpy()
    shifts = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)]  # 1/8 of 16 pixels
    found = []
    for b in range(len(x)):
        matches = [s for s in shifts if np.array_equal(out[b:b + 1], numpy_translate(x[b:b + 1], [s[0]], [s[1]]))]
        assert len(matches) == 1, b
        found.append(matches[0])
    assert len(set(found)) > 5  # per-example draws, not one shift for the batch


def test_color_matches_the_reference_formula_per_image():
    """DiffAugment's colour ops, written out in NumPy for each RGB image of the concatenation."""
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, size=(3, 5, 5, 6)).astype(np.float32)
    bright, sat, con = rng.uniform(-0.5, 0.5, 3), rng.uniform(0, 2, 3), rng.uniform(0.5, 1.5, 3)
    got = diff_augment.color(tf.constant(x), bright, sat, con, groups=2).numpy()
    for b in range(3):
        for g in range(2):
            img = x[b, ..., 3 * g:3 * g + 3] + bright[b]
            img = (img - img.mean(-1, keepdims=True)) * sat[b] + img.mean(-1, keepdims=True)
            img = (img - img.mean()) * con[b] + img.mean()
            np.testing.assert_allclose(got[b, ..., 3 * g:3 * g + 3], img, atol=1e-5)


def test_gradients_flow_through_every_policy():
    tf.random.set_seed(4)
    x = tf.random.uniform([4, 8, 8, 3], -1, 1)
    with tf.GradientTape() as tape:
        tape.watch(x)
        (out,) = diff_augment.augment([x], diff_augment.POLICIES, KEY)
        total = tf.reduce_sum(out * out)
    grad = tape.gradient(total, x).numpy()
    assert np.isfinite(grad).all() and np.abs(grad).sum() > 0


def test_draws_are_a_function_of_the_key():
    """Same key, same transform (what makes a resumed run exact); any other key part, another one."""
    x = tf.random.stateless_uniform([8, 16, 16, 3], [5, 6], -1, 1)
    keys = {"base": (0, 7, 0, 1), "seed": (1, 7, 0, 1), "step": (0, 8, 0, 1), "replica": (0, 7, 1, 1), "call": (0, 7, 0, 2)}
    outs = {name: diff_augment.augment([x], diff_augment.POLICIES, diff_augment.draw_key(*k))[0].numpy()
            for name, k in keys.items()}
    again = diff_augment.augment([x], diff_augment.POLICIES, diff_augment.draw_key(*keys["base"]))[0].numpy()
    np.testing.assert_array_equal(again, outs["base"])
    for name in ("seed", "step", "replica", "call"):
        assert np.abs(outs[name] - outs["base"]).mean() > 0.05, name


def test_a_policy_subset_keeps_the_other_draws():
    """Each op has its own sub-key: a policy with colour translates each example as one without it."""
    x = tf.random.stateless_uniform([8, 16, 16, 3], [1, 2], -1, 1)
    colour_only = diff_augment.augment([x], ("color",), KEY)[0]
    both = diff_augment.augment([x], ("color", "translation"), KEY)[0]
    translated_after = diff_augment.augment([colour_only], ("translation",), KEY)[0]
    np.testing.assert_allclose(both.numpy(), translated_after.numpy(), atol=1e-6)
    assert np.abs(both.numpy() - colour_only.numpy()).mean() > 0.05  # the translation did move them
