"""Framings (`data.framing`) against independent implementations of each convention: dlib's own
`get_face_chip`, and FFHQ's crop as its script makes it (PIL's QUAD transform). Geometry is read
off crops of a coordinate ramp (pixel (x, y) holds red x, green y), so every crop pixel tells
where in the image it was sampled."""

import dlib
import numpy as np
import pytest
from conftest import FIXTURES
from PIL import Image

from tf_stacksr.data import align, framing

RAMP = np.stack([*np.meshgrid(np.arange(256), np.arange(256)), np.zeros((256, 256), int)], axis=-1).astype(np.uint8)
# dlib's 5 points (outer/inner corner of the image-right eye, of the image-left eye, nose base) of a face in RAMP.
POINTS = np.array([[170, 100], [150, 102], [100, 99], [120, 101], [136, 140]], np.float64)


def where_crop_puts(crop: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Where a crop of RAMP puts these image points (crop pixel coordinates): the affine map
    crop -> image fitted to the ramp values away from its edges (fitting averages out their
    rounding), inverted."""
    size = crop.shape[0]
    rows, cols = np.mgrid[0:size, 0:size]
    design = np.stack([cols.ravel(), rows.ravel(), np.ones(size * size)], 1)
    xy = crop[..., :2].reshape(-1, 2).astype(np.float64)
    inside = np.all((xy > 2) & (xy < 253), axis=-1)
    assert inside.mean() > 0.5
    to_image = np.linalg.lstsq(design[inside], xy[inside], rcond=None)[0].T
    return align.transform_points(align.invert_affine(to_image), points)


def apart(ours: np.ndarray, theirs: np.ndarray) -> float:
    """The largest distance between corresponding points."""
    return float(np.linalg.norm(ours - theirs, axis=-1).max())


def dlib_shape(points: np.ndarray) -> dlib.full_object_detection:
    return dlib.full_object_detection(dlib.rectangle(60, 40, 200, 180), [dlib.point(int(x), int(y)) for x, y in points])


@pytest.mark.parametrize("size, padding, tolerance", [
    (150, 0.25, 0.05),  # enlarging: dlib samples the image itself
    (120, 0.5, 0.6),  # shrinking: dlib samples an image pyramid, which shifts its crop by about half a pixel
    (64, 0.35, 0.6),
])
def test_dlib_chip_puts_the_landmarks_where_dlib_get_face_chip_does(size, padding, tolerance):
    chip = dlib.get_face_chip(RAMP, dlib_shape(POINTS), size=size, padding=padding)
    ours = align.transform_points(framing.dlib_chip_matrix(POINTS, size, padding), POINTS)
    assert apart(ours, where_crop_puts(chip, POINTS)) < tolerance


def test_dlib_chip_is_our_template_at_face_scale_one_over_one_plus_twice_the_padding():
    for padding in (0.0, 0.25, 0.5):
        ours = align.transform_points(framing.dlib_chip_matrix(POINTS, 64, padding), POINTS)
        # dlib fits crop -> image, unweighted; both leave the points near the template at that scale
        np.testing.assert_allclose(ours, align.canonical_landmarks(64, 1 / (1 + 2 * padding)), atol=1.5)


def ffhq_reference(image: np.ndarray, landmarks68: np.ndarray, size: int) -> np.ndarray:
    """FFHQ's `recreate_aligned_images` quad and transform, without its shrink/crop/pad steps
    (which only change the pixels outside a small enough photo), sampled by PIL."""
    lm = landmarks68
    eye_left, eye_right = np.mean(lm[36:42], axis=0), np.mean(lm[42:48], axis=0)
    eye_avg, eye_to_eye = (eye_left + eye_right) * 0.5, eye_right - eye_left
    mouth_avg = (lm[48] + lm[54]) * 0.5
    eye_to_mouth = mouth_avg - eye_avg
    x = eye_to_eye - np.flipud(eye_to_mouth) * [-1, 1]
    x /= np.hypot(*x)
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.flipud(x) * [-1, 1]
    c = eye_avg + eye_to_mouth * 0.1
    quad = np.stack([c - x - y, c - x + y, c + x + y, c + x - y])
    return np.asarray(Image.fromarray(image).transform((size, size), Image.QUAD, (quad + 0.5).flatten(), Image.BILINEAR))


def test_ffhq_matches_ffhqs_quad_transform():
    rng = np.random.default_rng(0)
    landmarks68 = np.array([128.0, 128.0]) + rng.normal(0, 4, (68, 2))
    landmarks68[36:42] += [-22, -15]  # image-left eye
    landmarks68[42:48] += [22, -17]  # image-right eye
    landmarks68[48] += [-15, 25]  # mouth corners
    landmarks68[54] += [16, 23]
    key_points = np.stack([landmarks68[36:42].mean(axis=0), landmarks68[42:48].mean(axis=0), landmarks68[48], landmarks68[54]])
    ours = align.transform_points(framing.ffhq_matrix(landmarks68, 64), key_points)
    # PIL samples half an input pixel (right and down) off the quad FFHQ names: 0.27 crop pixels here
    assert apart(ours, where_crop_puts(ffhq_reference(RAMP, landmarks68, 64), key_points)) < 0.3


def test_each_framing_crops_a_fixture_face_at_its_convention(detected_face):
    photo, face = detected_face(FIXTURES / "celeba" / "182641.jpg")
    for name in framing.STANDARD:
        framer = framing.Framer(framing.parse(name))
        crop, matrix = framer.crop(photo, face.landmarks, 64)
        assert crop.shape == (64, 64, 3) and crop.dtype == np.uint8
        moved = align.transform_points(matrix, face.landmarks)
        eyes = align.eye_centres(moved)
        if name == framing.OURS:
            expected = align.eye_centres(align.canonical_landmarks(64, 0.7))
            np.testing.assert_allclose(eyes, expected, atol=1.5)
        elif name.startswith(framing.DLIB_CHIP):
            padding = framing.parse(name).padding
            np.testing.assert_allclose(moved, align.canonical_landmarks(64, 1 / (1 + 2 * padding)), atol=3.0)
        else:  # FFHQ: the eyes' midpoint on the vertical centre line, eyes level, about a quarter of the side apart
            points68 = align.transform_points(matrix, framer.landmarks68(photo, face.landmarks))
            left, right = points68[36:42].mean(axis=0), points68[42:48].mean(axis=0)
            assert abs((left[0] + right[0]) / 2 - 31.5) < 3 and abs(left[1] - right[1]) < 3
            assert 0.2 * 64 < right[0] - left[0] < 0.3 * 64
    # the face shrinks in the frame as the padding grows: eye distance in the crop
    spans = [np.ptp(align.transform_points(framing.dlib_chip_matrix(face.landmarks, 64, p), face.landmarks)[:4, 0])
             for p in (0.25, 0.35, 0.5)]
    assert spans == sorted(spans, reverse=True)


def test_unknown_framing_names_the_flag():
    assert framing.parse("dlib_chip_0.35").padding == 0.35
    for bad in ("dlib", "dlib_chip", "dlib_chip_-1", "dlib_chip_x", "FFHQ", "ours "):
        with pytest.raises(ValueError, match=rf"--framing='{bad}': unknown framing; expected ours, ffhq or dlib_chip_<padding>"):
            framing.parse(bad)
