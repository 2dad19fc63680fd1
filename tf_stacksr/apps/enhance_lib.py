"""Super-resolve the faces in real photos and paste them back into the upscaled photo.

Per photo: decode (EXIF orientation applied, odd formats converted: `data.photos`), upscale the
whole photo bicubically by `upscale`, find every face (`data.align`: dlib detection and 5
landmarks), cut each out aligned exactly as the training faces were (`align_face` at the model's
HR size, then the training degradation `pairs.downscale` to its LR size), super-resolve the
faces in one batch, and warp each result back with the inverse of its alignment matrix,
blending it in with a feathered square mask so no seam shows. The HR crop and the output
share one frame up to that similarity transform, so a face lands where it was, at any
`upscale` (see `paste_matrix`).

Big photos stay bounded in memory: the input is capped at `max_side` on decode, faces are
detected on a copy of at most `detect_side`, the output is capped at `max_output_side` (the
upscale factor is lowered for that photo, with a note), and each face is blended inside its
own bounding box only. Reading and writing files, in batches: `photo_files`.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import cv2
import numpy as np

from tf_stacksr.data import align, pairs, photos

FACE_BATCH = 16
# A reason to skip a file besides `photos.Skip` reasons.
NOT_SQUARE = "aligned_input_not_square"
# --format: the input's own format (JPEG stays JPEG, PNG stays PNG, ...), or always PNG or JPEG.
OUTPUT_FORMATS = ("same", "png", "jpeg")


@dataclasses.dataclass(frozen=True)
class EnhanceOptions:
    upscale: float | None = None  # whole-photo factor; None: the model's scale
    aligned: bool = False  # inputs are aligned face crops (the training layout), not photos
    only_largest: bool = False
    save_faces: bool = False
    face_scale: float = 0.7  # must match the training crops (data.prepare's --face_scale)
    detector: str = "hog"
    feather: float = 0.12  # width of the mask's fade, as a fraction of the face crop side
    max_side: int = 4096  # inputs larger than this are downscaled on decode
    max_output_side: int = 8192
    detect_side: int = 1600
    overwrite: bool = False
    max_file_mb: int = photos.MAX_FILE_MB  # larger files are skipped unread (too_large)
    output_format: str = "same"  # one of OUTPUT_FORMATS (photo_files names and writes the outputs)

    def __post_init__(self) -> None:
        if self.upscale is not None and not 0.25 <= self.upscale <= 16:
            raise ValueError(f"--upscale={self.upscale}: expected a factor between 0.25 and 16")
        align.check_face_scale(self.face_scale, "face-scale")
        if self.detector not in align.DETECTORS:
            raise ValueError(f"--detector={self.detector!r}: expected one of {', '.join(align.DETECTORS)}")
        if not 0 < self.feather <= 0.5:
            raise ValueError(f"--feather={self.feather}: expected a fraction in (0, 0.5]")
        for name in ("max_side", "max_output_side", "detect_side"):
            if getattr(self, name) < 64:
                raise ValueError(f"--{name.replace('_', '-')}={getattr(self, name)}: expected at least 64 pixels")
        if self.max_file_mb < 1:
            raise ValueError(f"--max-file-mb={self.max_file_mb}: expected a file size cap of at least 1 MB")
        if self.output_format not in OUTPUT_FORMATS:
            raise ValueError(f"--format={self.output_format!r}: expected one of {', '.join(OUTPUT_FORMATS)}")


@dataclasses.dataclass
class PhotoResult:
    image: np.ndarray  # uint8 [H, W, 3] or [H, W, 4] (alpha kept)
    faces: list[np.ndarray]  # the super-resolved aligned faces, uint8 [hr, hr, 3]
    landmarks: list[np.ndarray]  # where each face's 5 landmarks were found, in output pixels
    notes: list[str]


# ---- geometry ---------------------------------------------------------------------------
def paste_matrix(image_to_crop: np.ndarray, scale_x: float, scale_y: float) -> np.ndarray:
    """2x3 matrix from the HR crop to the output photo, upscaled by (scale_x, scale_y).

    Crop -> photo is the inverse alignment; photo -> output maps pixel centres as an image
    resize does, x' = s x + (s - 1) / 2.
    """
    crop_to_image = np.vstack([align.invert_affine(image_to_crop), [0.0, 0.0, 1.0]])
    resize = np.array([[scale_x, 0.0, (scale_x - 1) / 2], [0.0, scale_y, (scale_y - 1) / 2], [0.0, 0.0, 1.0]])
    return (resize @ crop_to_image)[:2]


def feather_mask(size: int, fraction: float) -> np.ndarray:
    """float32 [size, size]: 1 inside, easing to 0 over `fraction` of the side at every border."""
    ramp = max(1.0, fraction * size)
    d = np.minimum(np.arange(size), np.arange(size)[::-1]).astype(np.float32) + 0.5
    t = np.clip(d / ramp, 0.0, 1.0)
    edge = t * t * (3 - 2 * t)  # smoothstep: no visible kink where the fade starts
    return np.minimum.outer(edge, edge)


def paste_face(canvas: np.ndarray, face: np.ndarray, matrix: np.ndarray, mask: np.ndarray) -> None:
    """Blend `face` (warped by the 2x3 `matrix`) into `canvas` in place, touching only its box."""
    size = face.shape[0]
    corners = np.array([[-0.5, -0.5], [size - 0.5, -0.5], [-0.5, size - 0.5], [size - 0.5, size - 0.5]])
    mapped = align.transform_points(matrix, corners)
    x0, y0 = np.maximum(np.floor(mapped.min(axis=0)).astype(int) - 1, 0)
    x1 = min(int(np.ceil(mapped[:, 0].max())) + 2, canvas.shape[1])
    y1 = min(int(np.ceil(mapped[:, 1].max())) + 2, canvas.shape[0])
    if x1 <= x0 or y1 <= y0:
        return
    warp = matrix.copy()
    warp[:, 2] -= (x0, y0)
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    if scale < 1.0:  # shrinking: area-average first, as align_face does, so the paste does not alias
        new = max(1, round(size * scale))
        face = cv2.resize(face, (new, new), interpolation=cv2.INTER_AREA)
        mask = cv2.resize(mask, (new, new), interpolation=cv2.INTER_AREA)
        r = new / size
        pre = np.array([[r, 0.0, (r - 1) / 2], [0.0, r, (r - 1) / 2], [0.0, 0.0, 1.0]])
        warp = (np.vstack([warp, [0.0, 0.0, 1.0]]) @ np.linalg.inv(pre))[:2]
    box = (x1 - x0, y1 - y0)
    warped = cv2.warpAffine(face.astype(np.float32), warp, box, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.warpAffine(mask, warp, box, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    region = canvas[y0:y1, x0:x1, :3].astype(np.float32)
    blended = alpha[..., None] * warped + (1.0 - alpha[..., None]) * region
    canvas[y0:y1, x0:x1, :3] = np.clip(np.round(blended), 0, 255).astype(np.uint8)


# ---- faces ------------------------------------------------------------------------------
def detect_faces(aligner: align.FaceAligner, rgb: np.ndarray, detect_side: int) -> list[align.Face]:
    """Faces of `rgb`, largest first, found on a copy of at most `detect_side` (dlib's cost and
    memory grow with the pixel count); coordinates are mapped back to `rgb`."""
    long_side = max(rgb.shape[:2])
    if long_side <= detect_side:
        return aligner.detect(rgb)
    r = detect_side / long_side
    small = cv2.resize(rgb, (max(1, round(rgb.shape[1] * r)), max(1, round(rgb.shape[0] * r))), interpolation=cv2.INTER_AREA)
    back = lambda v: (np.asarray(v, dtype=np.float64) + 0.5) / r - 0.5  # noqa: E731
    return [align.Face(box=tuple(float(v) for v in back(f.box)), score=f.score, landmarks=back(f.landmarks).astype(np.float32))
            for f in aligner.detect(small)]


# dlib's CNN (mmod) detector finds faces from about 80 px: on 64 px LFW photos (faces ~28 px)
# doubled once it found 3 of 40 where HOG found 20; doubled twice, 40 of 40. dlib's advice is to
# upsample the image for small faces (its dnn_mmod_face_detection_ex enlarges to about 1800 x
# 1800); here at most twice, and never past CNN_MAX_SIDE, which bounds the cost (on 2 CPU cores
# about 2 s for 250 x 250, 21 s for 1000 x 1000).
CNN_MAX_SIDE = 1800
CNN_MAX_DOUBLINGS = 2


def cnn_upsample(shape: tuple[int, ...]) -> int:
    """How many times dlib doubles a photo of `shape` before its CNN detector searches it."""
    long_side, n = max(shape[:2]), 0
    while n < CNN_MAX_DOUBLINGS and long_side * 2 ** (n + 1) <= CNN_MAX_SIDE:
        n += 1
    return n


class CnnDetector:
    """dlib's CNN face detector with the enlargement it needs for small faces (`cnn_upsample`):
    photos up to 450 px are doubled twice, up to 900 px once; larger ones are searched as they are."""

    detector_name = "cnn"

    def __init__(self) -> None:
        self._by_upsample: dict[int, align.FaceAligner] = {}

    def detect(self, image: np.ndarray) -> list[align.Face]:
        n = cnn_upsample(image.shape)
        if n not in self._by_upsample:
            self._by_upsample[n] = align.FaceAligner("cnn", upsample=n)
        return self._by_upsample[n].detect(image)


def make_aligner(detector: str):
    """The face detector `enhance` runs for --detector: dlib's HOG (its own upsampling) or `CnnDetector`."""
    return CnnDetector() if detector == "cnn" else align.FaceAligner(detector)


def to_lr(crops: np.ndarray, lr_size: int) -> np.ndarray:
    """HR-frame uint8 crops -> LR faces by the training degradation (antialiased bicubic, quantised)."""
    return pairs.float_to_uint8(pairs.downscale(pairs.uint8_to_float(crops), lr_size)).numpy()


def super_resolve(upscaler: Callable, lr_faces: np.ndarray) -> np.ndarray:
    out = [upscaler(lr_faces[i:i + FACE_BATCH]) for i in range(0, len(lr_faces), FACE_BATCH)]
    return np.concatenate(out) if out else np.zeros((0, upscaler.hr_size, upscaler.hr_size, 3), np.uint8)


def output_scale(shape: tuple[int, ...], upscale: float, max_output_side: int) -> tuple[float, list[str]]:
    long_side = max(shape[:2])
    if long_side * upscale <= max_output_side:
        return upscale, []
    reduced = max_output_side / long_side
    return reduced, [f"upscale lowered to {reduced:.2f} to stay within --max-output-side={max_output_side}"]


def enhance_photo(rgb: np.ndarray, upscaler, options: EnhanceOptions,
                  aligner: align.FaceAligner | None = None, canvas_rgb: np.ndarray | None = None) -> PhotoResult:
    """Super-resolve the faces of one RGB uint8 photo (see the module doc); alpha is the caller's.

    `canvas_rgb`: the colours to upscale around the faces when they are not `rgb`'s. A photo with
    alpha passes its own colours here and, as `rgb`, its composite on white (what the detector
    and the model see), so no semi-transparent pixel outside a face changes colour.
    """
    upscale, notes = output_scale(rgb.shape, options.upscale or upscaler.scale, options.max_output_side)
    height, width = rgb.shape[:2]
    out_w, out_h = max(1, round(width * upscale)), max(1, round(height * upscale))
    if options.aligned:
        if height != width:
            raise photos.Skip(NOT_SQUARE, f"{width}x{height}; --aligned expects square face crops")
        sr = super_resolve(upscaler, to_lr(rgb[None], upscaler.lr_size))
        image = cv2.resize(sr[0], (out_w, out_h), interpolation=cv2.INTER_AREA if out_w < sr.shape[1] else cv2.INTER_CUBIC)
        return PhotoResult(image=image, faces=[sr[0]], landmarks=[], notes=notes)
    canvas = cv2.resize(rgb if canvas_rgb is None else np.ascontiguousarray(canvas_rgb), (out_w, out_h),
                        interpolation=cv2.INTER_AREA if upscale < 1 else cv2.INTER_CUBIC)
    faces = detect_faces(aligner or make_aligner(options.detector), rgb, options.detect_side)
    if options.only_largest:
        faces = faces[:1]
    if not faces:
        return PhotoResult(image=canvas, faces=[], landmarks=[], notes=notes + ["no face found: upscaled only"])
    aligned = [align.align_face(rgb, f.landmarks, upscaler.hr_size, options.face_scale) for f in faces]
    sr = super_resolve(upscaler, to_lr(np.stack([crop for crop, _ in aligned]), upscaler.lr_size))
    mask = feather_mask(upscaler.hr_size, options.feather)
    sx, sy = out_w / width, out_h / height
    for face, (_, matrix) in reversed(list(zip(sr, aligned))):  # largest last: it wins where faces overlap
        paste_face(canvas, face, paste_matrix(matrix, sx, sy), mask)
    landmarks = [f.landmarks * (sx, sy) + ((sx - 1) / 2, (sy - 1) / 2) for f in faces]
    return PhotoResult(image=canvas, faces=list(sr), landmarks=landmarks, notes=notes)
