"""The TF port of dlib's face descriptor against dlib itself, and the identity training term.

References: dlib's C++ `compute_face_descriptor` on the same chips (the port must agree to
float precision), dlib's own `get_face_chip` from the photo's landmarks (our fixed chip of an
aligned crop must land on the same face), and plain NumPy norms for the loss.
"""

import cv2
import numpy as np
import pytest
import tensorflow as tf
from conftest import FIXTURES

from tf_stacksr.data import align
from tf_stacksr.evaluation import eval_data
from tf_stacksr.metrics import identity
from tf_stacksr.networks import face_descriptor
from tf_stacksr.training import losses


@pytest.fixture(scope="module")
def dlib_net():
    import dlib

    return dlib.face_recognition_model_v1(align.model_path(identity.DESCRIPTOR_FILE))


@pytest.fixture(scope="module")
def ported():
    return face_descriptor.FaceDescriptor()


@pytest.fixture(scope="module")
def celeba_faces(detected_face):
    """(identity label, RGB photo, detected face): 3 fixture photos each of 3 CelebA identities."""
    paths = sorted(str(p) for p in (FIXTURES / "celeba").glob("*.jpg"))
    by_identity: dict = {}
    for path, label in zip(paths, eval_data.folder_identities(str(FIXTURES / "celeba"), paths)):
        by_identity.setdefault(label, []).append(path)
    return [(label, *detected_face(path)) for label in sorted(by_identity)[:3] for path in by_identity[label][:3]]


@pytest.fixture(scope="module")
def dlib_chips(celeba_faces):
    """dlib's own 150 px chips of the fixture faces, cut from the photos with their landmarks."""
    import dlib

    chips = []
    for _, photo, face in celeba_faces:
        box = dlib.rectangle(*(int(round(v)) for v in face.box))
        points = [dlib.point(int(round(x)), int(round(y))) for x, y in face.landmarks]
        chips.append(dlib.get_face_chip(photo, dlib.full_object_detection(box, points), face_descriptor.CHIP_SIZE, 0.25))
    return np.stack(chips)


@pytest.fixture(scope="module")
def crops128(celeba_faces):
    """The fixture faces as `prepare --size=128` aligns them, in [-1, 1]."""
    crops = [align.align_face(photo, face.landmarks, 128, 0.7)[0] for _, photo, face in celeba_faces]
    return np.stack(crops).astype(np.float32) / 127.5 - 1.0


def test_port_matches_dlib_on_real_chips(ported, dlib_net, dlib_chips):
    expected = np.array([dlib_net.compute_face_descriptor(chip) for chip in dlib_chips])
    got = ported(dlib_chips).numpy()
    assert got.shape == (len(dlib_chips), 128)
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_aligned_crop_chip_is_dlibs_chip_of_the_same_face(ported, celeba_faces, dlib_chips, crops128):
    """Our fixed chip of a 128 px prepared crop ~ dlib's chip from the photo's own landmarks."""
    ours = ported(face_descriptor.aligned_chips(crops128, face_scale=0.7)).numpy()
    reference = ported(dlib_chips).numpy()
    labels = np.array([label for label, _, _ in celeba_faces])
    d = np.linalg.norm(ours[:, None] - reference[None], axis=-1)
    assert np.all(np.diag(d) < 0.35), np.diag(d)
    # Each chip is nearest to a photo of its own identity.
    assert np.all(labels[d.argmin(axis=1)] == labels), d.round(2)


def test_a_wrong_face_scale_moves_the_chip_off_the_face(ported, dlib_chips, crops128):
    reference = ported(dlib_chips).numpy()
    right = np.linalg.norm(ported(face_descriptor.aligned_chips(crops128, 0.7)).numpy() - reference, axis=-1)
    wrong = np.linalg.norm(ported(face_descriptor.aligned_chips(crops128, 0.35)).numpy() - reference, axis=-1)
    assert wrong.mean() > right.mean() + 0.1


def test_identity_distance_is_the_descriptor_norm_and_pulls_towards_the_target(ported, celeba_faces):
    crops = np.stack([align.align_face(photo, face.landmarks, 64, 0.7)[0] for _, photo, face in celeba_faces])
    target = tf.constant(crops.astype(np.float32) / 127.5 - 1.0)
    blurred = tf.constant(np.stack([cv2.GaussianBlur(c, (0, 0), 2.0) for c in crops]).astype(np.float32) / 127.5 - 1.0)
    expected = np.linalg.norm(ported(face_descriptor.aligned_chips(blurred)).numpy()
                              - ported(face_descriptor.aligned_chips(target)).numpy(), axis=-1)
    with tf.GradientTape() as tape:
        tape.watch(blurred)
        distance = losses.identity_distance(ported, blurred, target, face_scale=0.7)
    np.testing.assert_allclose(distance.numpy(), expected, rtol=1e-5, atol=1e-5)
    assert np.all(expected > 0.05)
    np.testing.assert_allclose(losses.identity_distance(ported, target, target, 0.7).numpy(), 0.0, atol=1e-5)
    # A small step down the gradient brings the blurred faces' descriptors closer to the targets'.
    grad = tape.gradient(distance, blurred)
    assert np.all(np.isfinite(grad.numpy()))
    stepped = blurred - 0.02 * grad / tf.reduce_max(tf.abs(grad), axis=[1, 2, 3], keepdims=True)
    assert np.all(losses.identity_distance(ported, stepped, target, 0.7).numpy() < distance.numpy())


def test_a_file_that_is_not_the_descriptor_net_is_refused(tmp_path):
    bogus = tmp_path / "net.dat"
    bogus.write_bytes(b"\x01\x01\x05con_4" + bytes(100))
    with pytest.raises(ValueError, match="net.dat"):
        face_descriptor.FaceDescriptor(str(bogus))
    with pytest.raises(FileNotFoundError, match="missing.dat"):
        face_descriptor.FaceDescriptor(str(tmp_path / "missing.dat"))


@pytest.mark.parametrize("size, face_scale", [(64, 0.7), (128, 0.7), (256, 0.5), (64, 0.45)])
def test_aligned_chips_equal_tensorflows_crop_and_resize_and_compile_with_xla(size, face_scale):
    """The chip is the same bilinear crop tf.image.crop_and_resize takes (zeros past the edge), also under XLA."""
    faces = tf.random.stateless_uniform([3, size, size, 3], seed=[size, 7], minval=-1.0, maxval=1.0)
    half = face_scale * 1.5 / 2.0
    box = tf.constant([[0.5 - half, 0.5 - half, 0.5 + half, 0.5 + half]] * 3)
    expected = tf.clip_by_value(tf.image.crop_and_resize((faces + 1.0) * 127.5, box, tf.range(3),
                                                         [face_descriptor.CHIP_SIZE] * 2), 0.0, 255.0)
    np.testing.assert_allclose(face_descriptor.aligned_chips(faces, face_scale).numpy(), expected.numpy(), atol=0.01)  # grey levels
    compiled = tf.function(lambda x: face_descriptor.aligned_chips(x, face_scale), jit_compile=True)
    np.testing.assert_allclose(compiled(faces).numpy(), expected.numpy(), atol=0.01)  # grey levels
    assert (face_scale * 1.5 > 1) == bool(np.all(expected.numpy()[:, 0] == 0))  # the border past the crop


def test_aligned_chips_gradient_is_crop_and_resizes():
    faces = tf.random.stateless_uniform([2, 64, 64, 3], seed=[1, 2], minval=-0.9, maxval=0.9)
    box = tf.constant([[0.475, 0.475, 0.525, 0.525]] * 2)  # face_scale 1/30: no clipping at 0 or 255
    weights = tf.random.stateless_normal([2, 150, 150, 3], seed=[3, 4])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(faces)
        ours = tf.reduce_sum(face_descriptor.aligned_chips(faces, 0.05 / 1.5) * weights)
        theirs = tf.reduce_sum(tf.image.crop_and_resize((faces + 1.0) * 127.5, box, tf.range(2), [150, 150]) * weights)
    expected = tape.gradient(theirs, faces).numpy()
    # float32 sums of up to ~100 terms each: equal to 1e-4 of the gradient's scale
    np.testing.assert_allclose(tape.gradient(ours, faces).numpy(), expected, atol=1e-4 * np.abs(expected).max())


def test_aligned_chips_need_square_faces_of_a_static_size():
    with pytest.raises(ValueError, match="square faces"):
        face_descriptor.aligned_chips(tf.zeros([1, 64, 48, 3]))
