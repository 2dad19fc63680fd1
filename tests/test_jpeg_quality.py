"""Reading a photo's JPEG quality from its pixels (`apps.jpeg_quality`), against the encoders' own quality."""

import io

import cv2
import numpy as np
import pytest
from conftest import FIXTURES
from PIL import Image

from tf_stacksr.apps import jpeg_quality

BILL = FIXTURES / "lfw" / "Bill_Gates" / "Bill_Gates_0001.jpg"


def photo(factor: int) -> np.ndarray:
    """The fixture shrunk by `factor` (off its own JPEG grid: a clean photo)."""
    with Image.open(BILL) as image:
        image = image.convert("RGB").crop((0, 0, 248, 248))
        return np.asarray(image.resize((248 // factor, 248 // factor), Image.BICUBIC))


def pil_jpeg(rgb: np.ndarray, quality: int) -> tuple[np.ndarray, np.ndarray]:
    """(decoded pixels, the luma table Pillow wrote) of `rgb` saved as JPEG at `quality`."""
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=quality)
    with Image.open(buffer) as image:
        table = np.array(image.quantization[0])  # rows of the 8x8 block, as Pillow reports it
        return np.asarray(image.convert("RGB")), table


@pytest.mark.parametrize("quality", [10, 30, 50, 75, 90, 100])
def test_the_ijg_table_is_the_one_libjpeg_writes(quality):
    _, written = pil_jpeg(photo(2), quality)
    np.testing.assert_array_equal(jpeg_quality.ijg_luma_table(quality).ravel(), written)


def test_the_dct_is_jpegs():
    """A flat block has only a DC term, 8x its level-shifted value (JPEG's forward DCT)."""
    flat = np.full((8, 8, 3), 200, np.uint8)
    coefficients = jpeg_quality.luma_dct_blocks(flat)
    assert coefficients.shape == (1, 8, 8)
    assert coefficients[0, 0, 0] == pytest.approx(8 * 72)
    assert np.abs(coefficients[0].ravel()[1:]).max() < 1e-9


@pytest.mark.parametrize("factor", [2, 4, 8])
@pytest.mark.parametrize("quality", [30, 50, 75, 85])
def test_reads_the_quality_pillow_and_opencv_compressed_at(factor, quality):
    small = photo(factor)
    decoded, _ = pil_jpeg(small, quality)
    assert jpeg_quality.estimate_quality(decoded) in range(quality - 1, quality + 2)
    ok, encoded = cv2.imencode(".jpg", small[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    assert jpeg_quality.estimate_quality(cv2.imdecode(encoded, cv2.IMREAD_COLOR)[..., ::-1]) in range(quality - 1, quality + 2)


@pytest.mark.parametrize("factor", [1, 2, 4, 8])
def test_a_photo_off_the_grid_reads_as_clean(factor):
    shrunk = photo(2 * factor)  # the JPEG fixture resized: its blocks are gone
    assert jpeg_quality.estimate_quality(shrunk) is None
    decoded, _ = pil_jpeg(photo(factor), 50)
    assert jpeg_quality.estimate_quality(decoded[3:, 5:]) is None  # cropped off the 8x8 grid
    assert jpeg_quality.estimate_quality(np.zeros((4, 4, 3), np.uint8)) is None  # no whole block


def test_bad_input_is_named():
    with pytest.raises(ValueError, match=r"RGB image \[H, W, 3\].*\(8, 8\)"):
        jpeg_quality.luma_dct_blocks(np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="quality=0"):
        jpeg_quality.ijg_luma_table(0)
