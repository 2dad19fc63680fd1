"""Face-size routing (`apps.routing`): which shipped model gets a face, and enhance with it."""

import math
import os

import cv2
import numpy as np
import pytest
from conftest import FIXTURES
from PIL import Image

from tf_stacksr import enhance
from tf_stacksr.apps import enhance_lib, routing
from tf_stacksr.data import align, detect
from tf_stacksr.models import zoo

BILL = os.path.join(FIXTURES, "lfw", "Bill_Gates", "Bill_Gates_0001.jpg")
FIDEL = os.path.join(FIXTURES, "lfw", "Fidel_Castro", "Fidel_Castro_0001.jpg")
FFHQ = os.path.join(FIXTURES, "ffhq", "00001.jpg")


class StandIn:
    """A shipped model's stand-in: bicubic LR -> HR, brightened; records the LR faces it got."""

    def __init__(self, entry, brighten=40):
        self.name, self.lr_size, self.hr_size, self.scale = entry.name, entry.lr_size, entry.hr_size, entry.scale
        self.brighten, self.calls = brighten, []

    def __call__(self, lr):
        assert lr.dtype == np.uint8 and lr.shape[1:] == (self.lr_size, self.lr_size, 3)
        self.calls.append(lr)
        out = np.stack([cv2.resize(f, (self.hr_size, self.hr_size), interpolation=cv2.INTER_CUBIC) for f in lr])
        return np.clip(out.astype(int) + self.brighten, 0, 255).astype(np.uint8)


def stand_in_router():
    """A Router over stand-ins: name -> the stand-in at the model's own size, (name, lr_size) -> one
    built for a larger input."""
    stand_ins = {}

    def load(name, lr_size=None):
        if lr_size is None:
            return stand_ins[name]
        entry = next(e for e in router.entries if e.name == name)
        return stand_ins.setdefault((name, lr_size), StandIn(zoo.Entry(name, name, lr_size, lr_size * entry.scale, "")))

    router = routing.Router(load=load)
    stand_ins.update({entry.name: StandIn(entry) for entry in router.entries})
    return router, stand_ins


def rgb(path, factor=1.0):
    with Image.open(path) as image:
        image = image.convert("RGB")
        return np.asarray(image.resize((round(image.width * factor), round(image.height * factor)), Image.BICUBIC))


# What "auto" routing sends a face of each LR size to: the clean model, or the real-photo model
# where the photo was JPEG'd at that model's quality threshold or below (None: never).
CLEAN = {16: "celeba_16to64_gan", 32: "celeba_32to128_psnr", 64: "ffhq_celeba_64to256_psnr"}
REAL = {16: ("celeba_16to64_realistic", 82), 32: ("celeba_32to128_realistic", 82),
        64: ("ffhq_celeba_64to256_realistic", 52)}


def expected_model(lr_size, quality):
    name, up_to = REAL[lr_size]
    return name if (100 if quality is None else quality) <= up_to else CLEAN[lr_size]


def expected_choice(native, quality):
    """(model, LR size) "auto" routing picks for a face of `native` px in a photo JPEG'd at `quality`,
    written out from the rule: the smallest input that holds the face among each model's own and
    the sizes it is built for (the 32 px PSNR model up to 1.5x its own, the 64 px pair up to 128)."""
    q = 100 if quality is None else quality
    if native > 128:
        return None
    if native > 64:
        return expected_model(64, quality), 16 * math.ceil(native / 16)
    if 32 < native <= 48 and q > REAL[32][1]:  # the clean 32 px model, built for 40 or 48 px
        return CLEAN[32], 8 * math.ceil(native / 8)
    own = next(size for size in (16, 32, 64) if size >= native)
    return expected_model(own, quality), own


@pytest.mark.parametrize("native", [8, 15.9, 16, 16.1, 20, 24.5, 27, 32, 32.5, 40, 40.5, 48, 48.1, 64, 64.1, 80, 81,
                                    100, 128, 128.1, 900])
def test_each_face_goes_to_the_smallest_input_that_holds_it(native):
    router = routing.Router(load=lambda name: None)
    assert router.max_face == routing.MAX_FACE == 128
    assert list(router.by_lr) == [16, 32, 40, 48, 64, 80, 96, 112, 128]
    for quality in (None, 95, 83, 82, 73, 72, 53, 52, 30):
        entry = router.choose(native, 4.0, quality)
        expected = expected_choice(native, quality)
        assert (entry and (entry.name, entry.lr_size)) == expected, quality
        if entry is not None:
            assert entry.lr_size >= native and entry.hr_size == 4 * entry.lr_size  # never squeezed
        assert router.choose(native, 1.0, quality) is None  # a photo not enlarged keeps its faces as they are
        enlarged_less = router.choose(native, 1.5, quality)  # faces above 64 px get a model from 2x on
        assert enlarged_less == (entry if native <= 64 else None)
    own_sizes_only = routing.Router(load=lambda name: None, max_face=64, built_up_to=1)
    assert list(own_sizes_only.by_lr) == [16, 32, 64]
    assert own_sizes_only.choose(native, 4.0) == (
        None if native > 64 else routing.zoo.entries()[expected_model(next(s for s in (16, 32, 64) if s >= native), None)])


def test_only_the_listed_models_are_built_between_sizes():
    router = routing.Router(load=lambda name: None, degradation="bicubic")
    assert [(n, router.choose(n, 4.0).name, router.choose(n, 4.0).lr_size) for n in (18, 30, 35, 47, 60)] == [
        (18, "celeba_32to128_psnr", 32), (30, "celeba_32to128_psnr", 32), (35, "celeba_32to128_psnr", 40),
        (47, "celeba_32to128_psnr", 48), (60, "ffhq_celeba_64to256_psnr", 64)]
    assert routing.BUILT_BETWEEN == ("celeba_32to128_psnr",)


def test_built_sizes_are_quarter_steps_that_the_generators_take():
    assert routing.built_sizes(16, 24) == [20, 24] and routing.built_sizes(32, 48) == [40, 48]
    assert routing.built_sizes(64, 128) == [80, 96, 112, 128] and routing.built_sizes(64, 79) == []
    assert routing.built_sizes(8, 12) == [12]  # never below a step of 4: G1 needs LR sides divisible by 4


def test_fixed_degradations_route_every_photo_alike():
    for degradation in routing.MODEL_SETS:
        router = routing.Router(load=lambda name: None, degradation=degradation)
        assert router.jpeg_quality(np.zeros((64, 64, 3), np.uint8)) is None  # not read: it would not matter
        expected = routing.routed_entries(degradation=degradation)
        assert router.entries == expected
        assert [router.choose(n, 4.0, 30) for n in (10, 30, 60)] == expected


def test_clean_routing_uses_the_shipped_psnr_models():
    assert [e.name for e in routing.routed_entries(degradation="bicubic")] == [
        "celeba_16to64_psnr", "celeba_32to128_psnr", "ffhq_celeba_64to256_psnr"]
    assert set(zoo.entries()) >= {"celeba_16to64_gan"}  # on offer, but not routed to
    assert routing.Router(load=lambda name: None).scale == 4


def test_photos_prefer_models_trained_for_real_photos_where_a_size_has_one():
    entries = {e.name: e for e in [zoo.Entry("a_16to64_psnr", "a", 16, 64, "bicubic"),
                                   zoo.Entry("a_16to64_gan", "b", 16, 64, "bicubic"),
                                   zoo.Entry("a_16to64_realistic", "c", 16, 64, "realistic"),
                                   zoo.Entry("a_32to128_psnr", "d", 32, 128, "bicubic")]}
    assert [e.name for e in routing.routed_entries(entries)] == ["a_16to64_realistic", "a_32to128_psnr"]
    assert [e.name for e in routing.routed_entries(entries, "bicubic")] == ["a_16to64_psnr", "a_32to128_psnr"]
    auto = routing.Router(entries=entries, load=lambda name: None)  # "auto": by the photo's JPEG quality
    qualities = (None, 95, routing.DEFAULT_UP_TO_QUALITY + 1, routing.DEFAULT_UP_TO_QUALITY, 30)
    assert [auto.choose(10, 4.0, q).name for q in qualities] == ["a_16to64_psnr"] * 3 + ["a_16to64_realistic"] * 2
    assert [e.name for e in auto.entries] == ["a_16to64_psnr", "a_16to64_realistic", "a_32to128_psnr"]
    with pytest.raises(ValueError, match="degradation='jpeg'"):
        routing.Router(entries=entries, degradation="jpeg")
    with pytest.raises(ValueError, match="degradation='auto'"):
        routing.routed_entries(entries, "auto")  # a way to choose, not a set of models


def test_router_without_models_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(zoo, "SHIPPED_DIR", str(tmp_path / "none"))
    with pytest.raises(FileNotFoundError, match="no shipped models.*--model=PATH"):
        routing.Router()
    with pytest.raises(ValueError, match="rule="):
        routing.Router(entries={"x": zoo.Entry("x", "x", 16, 64, "bicubic")}, rule="biggest")


def sized_photo():
    """Four faces side by side whose native sizes route to four different choices."""
    parts = [rgb(BILL, 0.11), rgb(FIDEL, 0.25), rgb(FFHQ, 0.5), rgb(FFHQ, 1.0)]
    height = max(p.shape[0] for p in parts)
    return np.concatenate([np.pad(p, ((0, height - p.shape[0]), (0, 0), (0, 0)), mode="edge") for p in parts], axis=1)


@pytest.mark.parametrize("jpeg", [0, 50])
def test_enhance_routes_each_face_by_size_and_keeps_the_largest_faces_bicubic(jpeg):
    photo = sized_photo()
    if jpeg:  # a compressed photo: its small faces go to the models trained for such photos
        photo = cv2.imdecode(cv2.imencode(".jpg", photo, [cv2.IMWRITE_JPEG_QUALITY, jpeg])[1], cv2.IMREAD_COLOR)
    faces = detect.make("yunet").detect(photo)
    natives = sorted(enhance_lib.native_size(f, 0.7) for f in faces)
    assert len(faces) == 4 and natives[0] < 16 and 24 < natives[1] < 32 and 80 < natives[2] <= 96 < 128 < natives[3], natives
    router, stand_ins = stand_in_router()
    result = enhance_lib.enhance_photo(photo, router, enhance_lib.EnhanceOptions(upscale=2))
    by_size = dict(zip([round(enhance_lib.native_size(f, 0.7)) for f in faces], result.models))
    small, medium, large = (expected_model(lr, jpeg or None) for lr in (16, 32, 64))
    assert [by_size[round(n)] for n in natives] == [small, medium, large, "bicubic"]
    assert len(stand_ins[small].calls) == 1 and len(stand_ins[medium].calls) == 1
    assert len(stand_ins[(large, 96)].calls) == 1 and not stand_ins[large].calls  # built for the face's size
    assert any("kept bicubic" in note for note in result.notes)
    plain = cv2.resize(photo, result.image.shape[1::-1], interpolation=cv2.INTER_CUBIC).astype(int)
    for face, model in zip(faces, result.models):
        x, y = np.round(face.landmarks[4] * 2 + 0.5).astype(int)  # the nose, in the output
        change = result.image[y - 2:y + 3, x - 2:x + 3].astype(int).mean() - plain[y - 2:y + 3, x - 2:x + 3].mean()
        assert (change > 20) if model != "bicubic" else (change == 0)
    assert [f.shape[0] for f in result.faces] == [
        {small: 64, medium: 128, large: 384}.get(m, f.shape[0]) for f, m in zip(result.faces, result.models)]


def test_a_face_smaller_than_the_input_is_cut_out_in_the_training_frame():
    """lr_crop's one warp to the LR size lands a point where the HR crop, downscaled, would have it."""
    photo = np.zeros((120, 120, 3), np.uint8)
    point = np.array([61.3, 47.8])
    yy, xx = np.mgrid[:120, :120]
    photo[..., 1] = np.clip(255 * np.exp(-((xx - point[0]) ** 2 + (yy - point[1]) ** 2) / (2 * 2.0**2)), 0, 255)
    landmarks = align.canonical_landmarks(40, 0.7) * 0.9 + (35, 30)  # native ~36 px
    face = align.Face(box=(0, 0, 1, 1), score=1.0, landmarks=landmarks.astype(np.float32))
    lr, hr_matrix = enhance_lib.lr_crop(photo, face, 64, 256, 0.7)
    weights = lr[..., 1].astype(float)
    ys, xs = np.mgrid[:64, :64]
    found = np.array([(xs * weights).sum(), (ys * weights).sum()]) / weights.sum()
    expected = (align.transform_points(hr_matrix, point[None])[0] + 0.5) * 64 / 256 - 0.5
    assert np.linalg.norm(found - expected) < 0.1


def test_aligned_crops_are_routed_by_their_side():
    router, stand_ins = stand_in_router()
    crop = rgb(FFHQ, 28 / 256)  # a 28 px aligned face: the 32 px input holds it
    result = enhance_lib.enhance_photo(crop, router, enhance_lib.EnhanceOptions(aligned=True))
    assert result.models == ["celeba_32to128_psnr"] and result.image.shape == (112, 112, 3)
    crop = rgb(FFHQ, 40 / 256)  # 40 px: the 32 px model built for 40 px
    result = enhance_lib.enhance_photo(crop, router, enhance_lib.EnhanceOptions(aligned=True))
    assert result.models == ["celeba_32to128_psnr"] and stand_ins[("celeba_32to128_psnr", 40)].calls
    large = rgb(FFHQ, 100 / 256)  # larger than every model's input: the 64 px model built for 112 px
    result = enhance_lib.enhance_photo(large, router, enhance_lib.EnhanceOptions(aligned=True))
    assert result.models == ["ffhq_celeba_64to256_psnr"] and result.image.shape == (400, 400, 3)
    assert stand_ins[("ffhq_celeba_64to256_psnr", 112)].calls
    big = rgb(FFHQ, 140 / 256)
    result = enhance_lib.enhance_photo(big, router, enhance_lib.EnhanceOptions(aligned=True))
    assert result.models == ["bicubic"] and result.image.shape == (560, 560, 3)


@pytest.mark.slow
def test_cli_routes_with_the_shipped_models(tmp_path, capsys):
    photo = rgb(BILL, 30 / 121)  # the face's aligned crop is ~27 px across: the 32 -> 128 model
    Image.fromarray(photo).save(tmp_path / "small.png")
    assert enhance.main(["-i", str(tmp_path / "small.png"), "-o", str(tmp_path / "out"), "--save-faces", "--quiet"]) == 0
    assert "1 faces (celeba_32to128_psnr: 1)" in capsys.readouterr().out  # a clean photo: the clean model
    with Image.open(tmp_path / "out" / "small.png.face0.png") as face, Image.open(tmp_path / "out" / "small.png") as out:
        assert face.size == (128, 128) and out.size == (photo.shape[1] * 4, photo.shape[0] * 4)
