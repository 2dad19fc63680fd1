"""Loss terms against values computed by hand from their definitions."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tf_stacksr.training import losses


def log_sigmoid(x):
    return -math.log1p(math.exp(-x))


def test_cross_entropy_by_hand():
    logits = tf.constant([[[[2.0], [-1.0]]], [[[0.0], [3.0]]]])  # batch 2, 1x2 patches
    real = losses.cross_entropy(logits, 1.0).numpy()
    fake = losses.cross_entropy(logits, 0.0).numpy()
    # -log D = -log sigmoid(x); -log(1 - D) = -log sigmoid(-x)
    np.testing.assert_allclose(real, [-(log_sigmoid(2) + log_sigmoid(-1)) / 2, -(log_sigmoid(0) + log_sigmoid(3)) / 2], rtol=1e-6)
    np.testing.assert_allclose(fake, [-(log_sigmoid(-2) + log_sigmoid(1)) / 2, -(log_sigmoid(0) + log_sigmoid(-3)) / 2], rtol=1e-6)


def test_discriminator_and_generator_losses():
    real = tf.constant([[[[1.5]]]])
    fake = tf.constant([[[[-0.5]]]])
    d = losses.discriminator_loss(real, fake).numpy()[0]
    assert d == pytest.approx(-log_sigmoid(1.5) - log_sigmoid(0.5), rel=1e-6)
    g = losses.generator_adversarial_loss(fake).numpy()[0]
    assert g == pytest.approx(-log_sigmoid(-0.5), rel=1e-6)
    # At D's equilibrium (logit 0: D = 1/2) both sides cost log 2 per term.
    zero = tf.zeros((1, 2, 2, 1))
    assert losses.discriminator_loss(zero, zero).numpy()[0] == pytest.approx(2 * math.log(2), rel=1e-6)


def test_l1_by_hand():
    pred = tf.constant(np.arange(12, dtype=np.float32).reshape(2, 1, 2, 3) / 10)
    target = tf.zeros((2, 1, 2, 3))
    np.testing.assert_allclose(losses.l1_loss(pred, target).numpy(), [np.mean(np.arange(6)) / 10, np.mean(np.arange(6, 12)) / 10], rtol=1e-6)


def test_global_batch_average_matches_plain_mean_on_one_replica():
    per_example = losses.l1_loss(tf.ones((4, 2, 2, 3)), tf.zeros((4, 2, 2, 3)))
    assert tf.nn.compute_average_loss(per_example, global_batch_size=4).numpy() == pytest.approx(1.0)
    # Each of two replicas holding half the batch contributes half the global mean.
    assert tf.nn.compute_average_loss(per_example[:2], global_batch_size=4).numpy() == pytest.approx(0.5)
