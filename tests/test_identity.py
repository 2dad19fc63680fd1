"""Identity scoring on real fixture faces: a face is at distance ~0 from itself and beyond
dlib's 0.6 from other people; verification pairs are balanced and labelled correctly."""

import itertools

import numpy as np
import pytest
from conftest import FIXTURES

from tf_stacksr.data import pairs, pipeline
from tf_stacksr.evaluation import eval_data
from tf_stacksr.metrics import identity


def _faces(paths, size):
    return np.stack([pairs.float_to_uint8(pipeline.load_face(str(p), size)).numpy() for p in paths])


@pytest.fixture(scope="module")
def face_id():
    return identity.FaceIdentity()


@pytest.fixture(scope="module")
def lfw():
    paths = sorted((FIXTURES / "lfw").rglob("*.jpg"))
    return [p.parent.name for p in paths], _faces(paths, 128)


def test_a_face_is_at_distance_zero_from_itself(face_id, lfw):
    _, faces = lfw
    boxes, missed = face_id.face_boxes(faces)
    assert missed == 0
    a, b = face_id.descriptors(faces, boxes), face_id.descriptors(faces.copy(), boxes)
    assert np.all(identity.distances(a, b) < 1e-6)


def test_different_people_are_beyond_the_threshold(face_id, lfw):
    names, faces = lfw
    desc = face_id.descriptors(faces, face_id.face_boxes(faces)[0])
    for i, j in itertools.combinations(range(len(names)), 2):
        if names[i] != names[j]:
            assert identity.distances(desc[i], desc[j]) > identity.SAME_PERSON_THRESHOLD, (names[i], names[j])


def test_different_celeba_identities_at_64px_are_beyond_the_threshold(face_id):
    paths = pipeline.list_images(str(FIXTURES / "celeba"))
    labels = eval_data.folder_identities(str(FIXTURES / "celeba"), paths)
    first_of_each = {}
    for path, label in zip(paths, labels):
        first_of_each.setdefault(label, path)
    chosen = list(first_of_each.values())[:4]
    faces = _faces(chosen, 64)
    desc = face_id.descriptors(faces, face_id.face_boxes(faces)[0])
    for i, j in itertools.combinations(range(len(chosen)), 2):
        assert identity.distances(desc[i], desc[j]) > identity.SAME_PERSON_THRESHOLD


def test_verification_pairs_are_balanced_and_labelled():
    labels = ["a", "a", "a", "b", "b", None, "c"]
    i, j, same = identity.verification_pairs(labels, max_pairs=100, seed=0)
    assert same.sum() == 4 and (~same).sum() == 4  # a: 3 pairs, b: 1 pair; as many different pairs
    for a, b, s in zip(i, j, same):
        assert labels[a] is not None and labels[b] is not None and (labels[a] == labels[b]) == s
    capped = identity.verification_pairs(labels, max_pairs=2, seed=0)[2]
    assert capped.sum() == 2 and len(capped) == 4
    assert len(identity.verification_pairs(["a", "b", None], 10)[0]) == 0  # nobody twice: no pairs


def test_verification_accuracy_counts_correct_decisions():
    desc = np.array([[0.0], [0.1], [2.0]])
    i, j, same = np.array([0, 0]), np.array([1, 2]), np.array([True, True])
    assert identity.verification_accuracy(desc, i, j, same) == 0.5
    assert np.isnan(identity.verification_accuracy(desc, i[:0], j[:0], same[:0]))
