"""Evaluation face sources: identity labels of folders, faces loaded as training loads them,
and prepared shards (when this build has `tf_stacksr.data.shards`)."""

import numpy as np
import pytest
import tensorflow as tf
from conftest import FIXTURES

from tf_stacksr.data import pipeline
from tf_stacksr.evaluation import eval_data


def test_identities_come_from_identity_txt_or_person_folders():
    celeba = pipeline.list_images(str(FIXTURES / "celeba"))
    labels = eval_data.folder_identities(str(FIXTURES / "celeba"), celeba)
    assert len(set(labels)) == 8 and all(labels)  # 8 identities x 4 photos
    assert labels[celeba.index(str(FIXTURES / "celeba" / "182641.jpg"))] == "4930"
    lfw = pipeline.list_images(str(FIXTURES / "lfw"))
    assert eval_data.folder_identities(str(FIXTURES / "lfw"), lfw) == ["Bill_Gates"] * 2 + ["Fidel_Castro"] * 2
    ffhq = pipeline.list_images(str(FIXTURES / "ffhq"))
    assert eval_data.folder_identities(str(FIXTURES / "ffhq"), ffhq) == ["", ""]


def test_folder_faces_are_the_training_loader_output():
    source = eval_data.open_faces(str(FIXTURES / "lfw"), 64, limit=3)
    elements = list(source.dataset.as_numpy_iterator())
    assert source.size == 3 and len(elements) == 3
    key, ident, hr = elements[0]
    assert ident.decode() == "Bill_Gates" and hr.shape == (64, 64, 3)
    np.testing.assert_array_equal(hr, pipeline.load_face(key, 64).numpy())


def test_skip_leaves_out_the_first_faces_before_limit():
    every = [k for k, _, _ in eval_data.open_faces(str(FIXTURES / "lfw"), 64).dataset.as_numpy_iterator()]
    source = eval_data.open_faces(str(FIXTURES / "lfw"), 64, limit=2, skip=1)
    assert source.size == 2 and "after the first 1 faces" in source.description
    assert [k for k, _, _ in source.dataset.as_numpy_iterator()] == every[1:3]
    with pytest.raises(ValueError, match="--skip=-1"):
        eval_data.open_faces(str(FIXTURES / "lfw"), 64, skip=-1)
    with pytest.raises(ValueError, match="--skip=4 leaves no faces"):
        eval_data.open_faces(str(FIXTURES / "lfw"), 64, skip=4)


def test_missing_folder_is_named():
    with pytest.raises(ValueError, match="nowhere"):
        eval_data.open_faces("nowhere", 64)


def test_prepared_shards_are_read_with_their_identities(prepared_celeba_128):
    from tf_stacksr.data import shards

    out, manifest = prepared_celeba_128
    source = eval_data.open_faces(out, 64)
    elements = list(source.dataset.as_numpy_iterator())
    assert source.size == len(elements) == manifest["splits"]["test"]["examples"] > 0
    files, _ = shards.split_files(out, "test")
    first = next(iter(tf.data.TFRecordDataset(files)))
    key, ident, hr = elements[0]
    assert key and ident and hr.shape == (64, 64, 3)
    np.testing.assert_array_equal(hr, shards.load_record(first, 64).numpy())
    rest = eval_data.open_faces(out, 64, skip=2)
    assert rest.size == len(elements) - 2
    assert [k for k, _, _ in rest.dataset.as_numpy_iterator()] == [k for k, _, _ in elements[2:]]
    with pytest.raises(ValueError, match=f"--skip={len(elements)} leaves no faces"):
        eval_data.open_faces(out, 64, skip=len(elements))


def test_framed_faces_are_the_prepared_faces_cropped_again_from_their_photos(prepared_celeba_128):
    from tf_stacksr.data import shards

    out, _ = prepared_celeba_128
    files, _ = shards.split_files(out, "test")
    prepared = [shards.load_record(r, 128).numpy() for r in tf.data.TFRecordDataset(files).take(3)]
    ours = list(eval_data.framed_faces(out, "ours", 128, limit=3).dataset.as_numpy_iterator())
    for (_, _, face), record in zip(ours, prepared):  # `ours` reproduces prepare's crop (float32 landmarks: +-1 level)
        assert np.abs(face - record).max() <= 1.5 / 127.5
    wide = eval_data.framed_faces(out, "dlib_chip_0.5", 64, limit=3)
    assert "dlib get_face_chip geometry, padding 0.5" in wide.description
    elements = list(wide.dataset.as_numpy_iterator())
    assert [(k, i) for k, i, _ in elements] == [(k, i) for k, i, _ in ours]
    assert all(hr.shape == (64, 64, 3) and -1 <= hr.min() < hr.max() <= 1 for _, _, hr in elements)


def test_framed_faces_need_prepared_shards_and_a_known_framing(prepared_celeba_128):
    with pytest.raises(ValueError, match="--framing needs --data to be prepared shards"):
        eval_data.framed_faces(str(FIXTURES / "celeba"), "ours", 64)
    with pytest.raises(ValueError, match="--framing='dlib_chip': unknown framing"):
        eval_data.framed_faces(prepared_celeba_128[0], "dlib_chip", 64)
