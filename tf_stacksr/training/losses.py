"""The paper's losses (Eq. 1-10) as small per-example functions.

Every function returns one value per example (shape [batch]); the train step averages them
over the *global* batch with `tf.nn.compute_average_loss`, which keeps the gradients right
under any number of replicas. Adversarial terms use the usual logits form of the GAN
cross-entropy: discriminators minimise -log D(real) - log(1 - D(fake)); generators use the
non-saturating -log D(fake) in place of log(1 - D(fake)) (Goodfellow et al., 2014), which has
the same fixed point and does not vanish early in training. See docs/paper_mapping.md.
"""

from __future__ import annotations

import tensorflow as tf

from tf_stacksr.networks.face_descriptor import aligned_chips


def _per_example_mean(values: tf.Tensor) -> tf.Tensor:
    return tf.reduce_mean(tf.reshape(values, [tf.shape(values)[0], -1]), axis=1)


def cross_entropy(logits: tf.Tensor, label: float) -> tf.Tensor:
    """Mean sigmoid cross-entropy of a logits map against a constant real (1) / fake (0) label."""
    logits = tf.cast(logits, tf.float32)
    return _per_example_mean(tf.nn.sigmoid_cross_entropy_with_logits(tf.fill(tf.shape(logits), label), logits))


def discriminator_loss(real_logits: tf.Tensor, fake_logits: tf.Tensor) -> tf.Tensor:
    """-[log D(c, y) + log(1 - D(c, G))]: L_AB's real half plus L_AB''s fake half (Eq. 4-8)."""
    return cross_entropy(real_logits, 1.0) + cross_entropy(fake_logits, 0.0)


def generator_adversarial_loss(fake_logits: tf.Tensor) -> tf.Tensor:
    """Non-saturating generator side of L_AB' / L_BB': -log D(c, G)."""
    return cross_entropy(fake_logits, 1.0)


def l1_loss(prediction: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    """L_L1 = E|y - G(x, z)| (Eq. 10), mean over pixels and channels."""
    return _per_example_mean(tf.abs(tf.cast(target, tf.float32) - tf.cast(prediction, tf.float32)))


def identity_distance(descriptor, prediction: tf.Tensor, target: tf.Tensor, face_scale: float) -> tf.Tensor:
    """Distance of dlib face descriptors of prediction and (constant) target: ours, not the paper's.

    The same 128-d space and units as the identity metric (same person below 0.6); the target
    side is a constant, so only the generator is pushed. `descriptor` is a
    `networks.face_descriptor.FaceDescriptor`; both images are aligned crops in [-1, 1].
    """
    wanted = tf.stop_gradient(descriptor(aligned_chips(target, face_scale)))
    got = descriptor(aligned_chips(prediction, face_scale))
    # sqrt with a floor: the gradient of a norm at 0 is undefined.
    return tf.sqrt(tf.maximum(tf.reduce_sum(tf.square(got - wanted), axis=-1), 1e-12))
