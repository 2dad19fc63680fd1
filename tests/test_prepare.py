"""Preparation: bad inputs counted, splits by identity, atomic resumable shards, CLI and TFDS input."""

import collections
import glob
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib

import cv2
import numpy as np
import pytest
from conftest import FIXTURES, REPO, fifo_released_after
from PIL import Image

from tf_stacksr.data import photos, prepare, records, sources

CELEBA = os.path.join(FIXTURES, "celeba")
LFW = os.path.join(FIXTURES, "lfw")


def face(name="182641.jpg"):
    return Image.open(os.path.join(CELEBA, name)).convert("RGB")


def jpeg_bytes(image, **kw):
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=92, **kw)
    return buf.getvalue()


def all_records(output):
    manifest = json.load(open(os.path.join(output, "manifest.json")))
    out = []
    for split, entry in manifest["splits"].items():
        for shard in entry["shards"]:
            for ex in records.read_shard(os.path.join(output, shard["file"])):
                out.append((split, ex))
    return manifest, out


def make_bad_inputs(folder):
    """One photo per kind of bad input, named after the manifest entry it must end up in."""
    os.makedirs(folder)
    w = lambda name, data: open(os.path.join(folder, name), "wb").write(data)  # noqa: E731
    good = face()
    for name in ("182707.jpg", "183006.jpg"):
        shutil.copy(os.path.join(CELEBA, name), folder)
    w("empty.jpg", b"")
    w("truncated.jpg", jpeg_bytes(good)[:3000])
    w("not_an_image.jpg", b"this is a text file, not a photo\n" * 20)
    good.convert("L").save(os.path.join(folder, "grayscale.jpg"))
    rgba = good.convert("RGBA")
    rgba.putalpha(Image.new("L", good.size, 200))
    rgba.save(os.path.join(folder, "rgba.png"))
    good.convert("LA").save(os.path.join(folder, "la.png"))
    good.convert("P", palette=Image.Palette.ADAPTIVE).save(os.path.join(folder, "palette.png"))
    gray16 = (np.asarray(good.convert("L"), np.uint16) * 257)
    cv2.imwrite(os.path.join(folder, "gray16.png"), gray16)
    cv2.imwrite(os.path.join(folder, "rgb16.png"), cv2.cvtColor(np.asarray(good), cv2.COLOR_RGB2BGR).astype(np.uint16) * 257)
    w("cmyk.jpg", jpeg_bytes(good.convert("CMYK")))
    # Stored sideways with EXIF orientation 6 ("rotate 90 clockwise to view"): only
    # found if the orientation is applied (HOG does not find sideways faces).
    exif = Image.Exif()
    exif[0x0112] = 6
    w("exif_rotated.jpg", jpeg_bytes(good.transpose(Image.Transpose.ROTATE_90), exif=exif.tobytes()))
    w("tiny.jpg", jpeg_bytes(good.resize((20, 21))))
    huge = Image.new("RGB", (10000, 10000), (120, 110, 100))
    huge.paste(good.resize((1600, 1696)), (4000, 4000))
    w("huge.jpg", jpeg_bytes(huge))
    w("no_face.jpg", jpeg_bytes(Image.fromarray(np.full((240, 240, 3), 90, np.uint8))))
    pair = Image.new("RGB", (430, 240), (128, 128, 128))
    pair.paste(face("183034.jpg"), (0, 0))
    pair.paste(face("183205.jpg").resize((110, 116)), (300, 60))
    w("two_faces.jpg", jpeg_bytes(pair))
    w("small_face.jpg", jpeg_bytes(good.resize((110, 117))))


EXPECTED_SKIPS = {
    "empty_file": ["empty.jpg"],
    "truncated_or_corrupt": ["truncated.jpg"],
    "not_an_image": ["not_an_image.jpg"],
    "too_small": ["tiny.jpg"],
    "no_face": ["no_face.jpg"],
    "face_too_small": ["small_face.jpg"],
}
EXPECTED_CONVERSIONS = {
    "grayscale": ["grayscale.jpg", "la.png", "gray16.png"],
    "alpha_flattened": ["rgba.png", "la.png"],
    "palette": ["palette.png"],
    "16bit": ["gray16.png", "rgb16.png"],
    "cmyk": ["cmyk.jpg"],
    "exif_rotated": ["exif_rotated.jpg"],
    "downscaled_large": ["huge.jpg"],
    "multiple_faces": ["two_faces.jpg"],
}


@pytest.mark.slow
def test_every_bad_input_is_counted_and_the_job_succeeds(tmp_path):
    src, out = str(tmp_path / "photos"), str(tmp_path / "out")
    make_bad_inputs(src)
    options = prepare.PrepareOptions(size=128, max_upscale=1.5, split="none", shard_size=6, workers=2)
    manifest = prepare.prepare(src, out, options, progress=False)
    keys = lambda entries: sorted(e.split(":")[0] for e in entries)  # noqa: E731
    assert {k: keys(v) for k, v in manifest["skipped_files"].items()} == {k: sorted(v) for k, v in EXPECTED_SKIPS.items()}
    assert manifest["counts"]["skipped"] == {k: len(v) for k, v in EXPECTED_SKIPS.items()}
    assert {k: sorted(v) for k, v in manifest["converted_files"].items()} == {k: sorted(v) for k, v in EXPECTED_CONVERSIONS.items()}
    written = sorted(ex["source"].decode() for _, ex in all_records(out)[1])
    expected = ["182707.jpg", "183006.jpg", "cmyk.jpg", "exif_rotated.jpg", "gray16.png", "grayscale.jpg", "huge.jpg",
                "la.png", "palette.png", "rgb16.png", "rgba.png", "two_faces.jpg"]
    assert written == expected
    assert manifest["counts"] == {"photos": 18, "faces_written": 12, "photos_skipped": 6,
                                  "skipped": manifest["counts"]["skipped"], "converted": manifest["counts"]["converted"]}
    # The huge photo's matrix refers to the full 10000 px original: the face sits at 4000..5600.
    huge = next(ex for _, ex in all_records(out)[1] if ex["source"] == b"huge.jpg")
    matrix = huge["matrix"].reshape(2, 3).astype(np.float64)
    centre = cv2.invertAffineTransform(matrix) @ np.array([64.0, 64.0, 1.0])
    assert 4000 < centre[0] < 5600 and 4000 < centre[1] < 5700


def test_decode_photo_converts_modes_and_refuses_oversized_without_decoding():
    gray16 = Image.fromarray((np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16))
    buf = io.BytesIO()
    gray16.save(buf, "PNG")
    pixels, scale, conversions = photos.decode_photo(buf.getvalue())
    expected = (np.arange(64 * 64).reshape(64, 64) * 16) >> 8
    np.testing.assert_array_equal(pixels[..., 0], expected)  # top 8 bits, not clipped at 255
    assert pixels.shape == (64, 64, 3) and scale == 1.0 and "16bit" in conversions
    with pytest.raises(photos.Skip) as skip:
        photos.decode_photo(jpeg_bytes(Image.new("RGB", (2000, 1000))), max_pixels=1_000_000)
    assert skip.value.reason == "too_large"
    pixels, scale, conversions = photos.decode_photo(jpeg_bytes(Image.new("RGB", (2000, 1000))), max_side=500)
    assert pixels.shape == (250, 500, 3) and scale == 0.25 and conversions == ["downscaled_large"]


def test_identity_split_keeps_every_person_in_one_split(tmp_path):
    out = str(tmp_path / "out")
    options = prepare.PrepareOptions(size=64, split="identity", test_fraction=0.3, shard_size=10, workers=2)
    manifest, examples = prepare.prepare(CELEBA, out, options, progress=False), all_records(out)[1]
    truth = sources.read_identity_file(os.path.join(CELEBA, "identity.txt"))
    by_split = collections.defaultdict(set)
    for split, ex in examples:
        assert ex["identity"].decode() == truth[ex["source"].decode()]
        by_split[split].add(ex["identity"].decode())
    assert set(by_split) == {"train", "test"} and not by_split["train"] & by_split["test"]
    assert len(by_split["train"] | by_split["test"]) == len(set(truth.values()))
    assert manifest["identities_in_several_splits"] == 0 and manifest["split_mode"] == "identity"
    assert 0.25 <= manifest["splits"]["test"]["examples"] / 32 <= 0.5


def test_assign_splits_identity_random_and_folder():
    items = [sources.Item(f"p{i}.jpg", f"id{i % 37}") for i in range(1000)]
    split, mode = sources.assign_splits(items, "auto", 0.2, seed=3)
    assert mode == "identity"
    train = {it.identity for it in split if it.split == "train"}
    test = {it.identity for it in split if it.split == "test"}
    assert not train & test and 0.2 <= sum(it.split == "test" for it in split) / 1000 < 0.25
    again, _ = sources.assign_splits(items, "identity", 0.2, seed=3)
    other, _ = sources.assign_splits(items, "identity", 0.2, seed=4)
    assert again == split and other != split
    unlabelled = [sources.Item(f"p{i}.jpg", "") for i in range(100)]
    rnd, mode = sources.assign_splits(unlabelled, "auto", 0.1, seed=0)
    assert mode == "random" and sum(it.split == "test" for it in rnd) == 10
    layout = [sources.Item(os.path.join(s, f"{i}.jpg"), "") for s in ("train", "test") for i in range(3)]
    by_folder, mode = sources.assign_splits(layout, "auto", 0.1, seed=0)
    assert mode == "folder" and [it.split for it in by_folder] == ["train"] * 3 + ["test"] * 3
    only_train = [sources.Item(f"train/{i}", f"id{i}") for i in range(10)]  # e.g. TFDS lfw: one split
    assert sources.assign_splits(only_train, "auto", 0.2, seed=0)[1] == "identity"


@pytest.mark.slow
def test_interrupted_run_resumes_without_duplicates(tmp_path, monkeypatch):
    out = str(tmp_path / "out")
    options = prepare.PrepareOptions(size=64, split="identity", test_fraction=0.25, shard_size=8, workers=1)
    real = prepare.process_photo

    def crash_on_photo_20(task):
        if task[0] == 20:
            raise KeyboardInterrupt
        return real(task)

    monkeypatch.setattr(prepare, "process_photo", crash_on_photo_20)
    with pytest.raises(KeyboardInterrupt):
        prepare.prepare(CELEBA, out, options, progress=False)
    finished = sorted(os.listdir(out))
    assert "manifest.json" not in finished
    assert [n for n in finished if n.startswith("shard-")] == ["shard-00000.json", "shard-00001.json"]
    assert not any("-00002." in n for n in finished), "a shard of the interrupted range became visible"
    open(os.path.join(out, "train-00002.tfrecord.tmp-999"), "wb").write(b"half a shard")
    before = {n: os.stat(os.path.join(out, n)).st_mtime_ns for n in finished}

    processed = []
    monkeypatch.setattr(prepare, "process_photo", lambda task: processed.append(task[0]) or real(task))
    manifest = prepare.prepare(CELEBA, out, options, progress=False)
    assert processed == list(range(16, 32)), "finished shards must not be redone"
    assert all(os.stat(os.path.join(out, n)).st_mtime_ns == t for n, t in before.items())
    assert not any(".tmp-" in n for n in os.listdir(out))
    sources = collections.Counter(ex["source"].decode() for _, ex in all_records(out)[1])
    assert sorted(sources) == sorted(os.path.basename(p) for p in glob.glob(os.path.join(CELEBA, "*.jpg")))
    assert set(sources.values()) == {1} and manifest["counts"]["faces_written"] == 32
    # Byte for byte what an uninterrupted run writes.
    monkeypatch.setattr(prepare, "process_photo", real)
    clean = str(tmp_path / "clean")
    prepare.prepare(CELEBA, clean, options, progress=False)
    shard_files = sorted(n for n in os.listdir(clean) if n.endswith(".tfrecord"))
    assert shard_files == sorted(n for n in os.listdir(out) if n.endswith(".tfrecord"))
    for name in shard_files:
        assert open(os.path.join(out, name), "rb").read() == open(os.path.join(clean, name), "rb").read(), name


def test_an_unexpected_error_skips_only_that_photo(tmp_path, monkeypatch):
    real = photos.decode_photo

    def broken_for_gates(data, **kw):
        if data == open(os.path.join(LFW, "Bill_Gates", "Bill_Gates_0002.jpg"), "rb").read():
            raise RuntimeError("simulated decoder bug")
        return real(data, **kw)

    monkeypatch.setattr(photos, "decode_photo", broken_for_gates)
    manifest = prepare.prepare(LFW, str(tmp_path / "out"), prepare.PrepareOptions(size=64, workers=1), progress=False)
    assert manifest["skipped_files"] == {"error": ["Bill_Gates/Bill_Gates_0002.jpg: RuntimeError: simulated decoder bug"]}
    assert manifest["counts"]["faces_written"] == 3


def test_resume_with_other_options_is_refused(tmp_path):
    out = str(tmp_path / "out")
    prepare.prepare(LFW, out, prepare.PrepareOptions(size=64, workers=1), progress=False)
    with pytest.raises(ValueError, match="different options"):
        prepare.prepare(LFW, out, prepare.PrepareOptions(size=128, workers=1), progress=False)


def test_bad_options_and_inputs_name_the_flag(tmp_path):
    with pytest.raises(ValueError, match="--split="):
        prepare.PrepareOptions(split="sideways")
    with pytest.raises(ValueError, match="--input=.*no such folder"):
        prepare.prepare(str(tmp_path / "missing"), str(tmp_path / "out"))
    with pytest.raises(ValueError, match="no photos"):
        prepare.prepare(str(tmp_path), str(tmp_path / "out"))


@pytest.mark.slow
def test_cli_on_lfw_person_folders_with_png_dump(tmp_path):
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "tf_stacksr.prepare", f"--input={LFW}", f"--output={out}", "--size=64",
         "--dump_png", "--test_fraction=0.5", "--workers=2"],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    manifest = json.load(open(out / "manifest.json"))
    assert manifest["source"]["labels"] == "folder" and manifest["counts"]["faces_written"] == 4
    people = {s: {ex["identity"].decode() for sp, ex in all_records(str(out))[1] if sp == s} for s in manifest["splits"]}
    assert set(people) == {"train", "test"} and all(len(names) == 1 for names in people.values())
    assert people["train"] != people["test"]  # one person each, never the same one
    dumped = sorted(glob.glob(str(out / "png" / "*" / "*.png")))
    assert len(dumped) == 4 and cv2.imread(dumped[0]).shape == (64, 64, 3)


def test_tfds_input_from_a_locally_built_dataset(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")

    class TinyFaces(tfds.core.GeneratorBasedBuilder):
        """LFW-like: image + person label, built from the fixtures (nothing downloaded)."""

        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(
                {"image": tfds.features.Image(shape=(None, None, 3)), "label": tfds.features.Text()}))

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples()}

        def _generate_examples(self):
            for path in sorted(glob.glob(os.path.join(LFW, "*", "*.jpg"))):
                yield os.path.basename(path), {"image": path, "label": os.path.basename(os.path.dirname(path))}

    TinyFaces(data_dir=str(tmp_path / "tfds")).download_and_prepare()
    out = str(tmp_path / "out")
    options = prepare.PrepareOptions(size=64, tfds_data_dir=str(tmp_path / "tfds"), test_fraction=0.5, workers=1)
    manifest = prepare.prepare("tfds:tiny_faces", out, options, progress=False)
    assert manifest["source"] == {"kind": "tfds", "labels": "tfds", "photos": 4}
    assert manifest["counts"]["faces_written"] == 4 and manifest["split_mode"] == "identity"
    assert set(manifest["splits"]) == {"train", "test"} and manifest["identities_in_several_splits"] == 0
    labels = {ex["source"].decode(): ex["identity"].decode() for _, ex in all_records(out)[1]}
    assert sorted(labels.values()) == ["Bill_Gates"] * 2 + ["Fidel_Castro"] * 2
    with pytest.raises(ValueError, match="not prepared"):
        prepare.prepare("tfds:tiny_faces", out, prepare.PrepareOptions(tfds_data_dir=str(tmp_path / "empty")), progress=False)


def png_header_only(width, height):
    """A PNG whose header claims width x height (and whose pixels are missing)."""
    buf = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4:ihdr + 12] = struct.pack(">II", width, height)
    data[ihdr + 17:ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(data[ihdr:ihdr + 17])))
    return bytes(data)


def test_decode_reports_are_deterministic_and_named_right():
    details = []
    for _ in range(2):
        with pytest.raises(photos.Skip) as skip:
            photos.decode_photo(b"this is a text file, not a photo\n" * 20)
        assert skip.value.reason == "not_an_image"
        details.append(skip.value.detail)
    assert details[0] == details[1] and "0x" not in details[0] and "BytesIO" not in details[0]
    # A header far beyond Pillow's own decompression-bomb limit is too large, not "not an image".
    with pytest.raises(photos.Skip) as skip:
        photos.decode_photo(png_header_only(30000, 30000))
    assert skip.value.reason == "too_large" and skip.value.detail.startswith("900000000 pixels > ")
    # Invalid EXIF orientations (0, 9) mean upright: no rotation, no note.
    upright = np.asarray(face().resize((64, 80)))
    for orientation in (0, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        pixels, _, conversions = photos.decode_photo(jpeg_bytes(Image.fromarray(upright), exif=exif.tobytes()))
        assert conversions == [] and pixels.shape == upright.shape


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX fifos and /dev/null")
def test_special_files_are_skipped_and_the_manifest_is_reproducible(tmp_path):
    src = tmp_path / "photos"
    src.mkdir()
    shutil.copy(os.path.join(CELEBA, "182707.jpg"), src / "real.jpg")
    os.symlink(src / "real.jpg", src / "link.jpg")  # a symlink to a regular file is a photo
    os.symlink("/dev/null", src / "device.jpg")  # /dev/zero would be read until memory ran out
    os.mkfifo(src / "pipe.jpg")  # reading it would wait forever for a writer
    (src / "junk.jpg").write_bytes(b"this is a text file, not a photo\n" * 20)
    options = prepare.PrepareOptions(size=64, split="none", workers=1)
    manifests = []
    for run in ("a", "b"):
        with fifo_released_after(src / "pipe.jpg", 10):
            manifests.append(prepare.prepare(str(src), str(tmp_path / run), options, progress=False))
    skipped = manifests[0]["skipped_files"]
    assert {k: [e.split(":")[0] for e in v] for k, v in skipped.items()} == {
        "not_a_regular_file": ["device.jpg", "pipe.jpg"], "not_an_image": ["junk.jpg"]}
    assert skipped["not_a_regular_file"] == ["device.jpg: a character device, not a regular file",
                                             "pipe.jpg: a fifo, not a regular file"]
    assert manifests[0]["counts"]["faces_written"] == 2
    assert skipped == manifests[1]["skipped_files"] and "0x" not in json.dumps(skipped)


def test_files_over_the_size_cap_are_not_read(tmp_path):
    path = tmp_path / "big.jpg"
    path.write_bytes(b"\xff" * (2**20 + 1))
    with pytest.raises(photos.Skip) as skip:
        photos.read_photo_file(str(path), max_bytes=2**20, flag="--max_file_mb=1")
    assert (skip.value.reason, skip.value.detail) == ("too_large", "1048577 bytes > --max_file_mb=1")
    assert photos.read_photo_file(str(path), max_bytes=2**21) == path.read_bytes()
    src = tmp_path / "photos"
    src.mkdir()
    shutil.move(str(path), src / "big.jpg")
    options = prepare.PrepareOptions(size=64, max_file_mb=1, split="none", workers=1)
    manifest = prepare.prepare(str(src), str(tmp_path / "out"), options, progress=False)
    assert manifest["skipped_files"] == {"too_large": ["big.jpg: 1048577 bytes > --max_file_mb=1"]}
    with pytest.raises(ValueError, match="--max_file_mb=0: expected"):
        prepare.PrepareOptions(max_file_mb=0)
