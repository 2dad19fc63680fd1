"""Super-resolve the faces in real photos and paste them back into the upscaled photo.

Per photo: decode (EXIF orientation applied, odd formats converted: `data.photos`), upscale the
whole photo bicubically by `upscale`, find every face (`data.detect`: YuNet over a detection
pyramid, faces from ~10 px in photos of any size, with dlib's 5 landmarks; or dlib's own
detectors), cut each out aligned exactly as the training faces were, super-resolve the faces
in batches, and warp each result back with the inverse of its alignment matrix, blending it in
with a feathered square mask so no seam shows. The HR crop and the output share one frame up
to that similarity transform, so a face lands where it was, at any `upscale` (see `paste_matrix`).

Which model, and how a face is cut out for it:
- routed (the default: `upscaler` is an `apps.routing.Router`): each face goes to the smallest
  model input that holds its native size (among the models for compressed photos when the photo
  reads as JPEG-compressed), cut out at that LR size straight from the photo (never fewer
  pixels than the face has): a model's own input or one it is also built for (the clean 32 px
  model at 40 and 48 px; the 64 px models up to 128 px, in photos enlarged 2x or more); larger
  faces and photos not enlarged keep the bicubic face (nothing pasted). The rule and its
  measurement: `routing`.
- one model (`--model`): every face is cut out at that model's HR size and brought to its LR
  size by the training degradation (`pairs.downscale`), whatever the face's own size.

Big photos stay bounded in memory: the input is capped at `max_side` on decode, YuNet runs on
tiles of a pyramid level (dlib's detectors on a copy of at most `detect_side`), the output is
capped at `max_output_side` (the upscale factor is lowered for that photo, with a note), and
each face is blended inside its own bounding box only. Reading and writing files, in batches:
`photo_files`.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import cv2
import numpy as np

from tf_stacksr.apps import routing
from tf_stacksr.data import align, detect, pairs, photos

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
    detector: str = "yunet"  # data.detect.DETECTORS
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
        if self.detector not in detect.DETECTORS:
            raise ValueError(f"--detector={self.detector!r}: expected one of {', '.join(detect.DETECTORS)}")
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
    models: list[str] = dataclasses.field(default_factory=list)  # per face: the model that ran, or "bicubic"


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
def detect_faces(aligner, rgb: np.ndarray, detect_side: int) -> list[align.Face]:
    """Faces of `rgb`, largest first. A multi-scale detector (yunet) searches the photo itself;
    dlib's search a copy of at most `detect_side` (their cost and memory grow with the pixel
    count), and coordinates are mapped back to `rgb`."""
    long_side = max(rgb.shape[:2])
    if getattr(aligner, "multiscale", False) or long_side <= detect_side:
        return aligner.detect(rgb)
    r = detect_side / long_side
    small = cv2.resize(rgb, (max(1, round(rgb.shape[1] * r)), max(1, round(rgb.shape[0] * r))), interpolation=cv2.INTER_AREA)
    back = lambda v: (np.asarray(v, dtype=np.float64) + 0.5) / r - 0.5  # noqa: E731
    return [align.Face(box=tuple(float(v) for v in back(f.box)), score=f.score, landmarks=back(f.landmarks).astype(np.float32),
                       layout=f.layout) for f in aligner.detect(small)]


def make_aligner(detector: str):
    """The face detector `enhance` runs for --detector (`data.detect.make`)."""
    return detect.make(detector)


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


def native_size(face: align.Face, face_scale: float) -> float:
    """Side, in photo pixels, of the region the face's aligned crop covers (`align.native_crop_size`)."""
    return align.native_crop_size(face.landmarks, face_scale, face.layout)


def lr_crop(rgb: np.ndarray, face: align.Face, lr_size: int, hr_size: int, face_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 [lr, lr, 3] face, 2x3 matrix photo -> HR crop): the face at a model's LR size, in the
    frame the training LR faces have (the HR crop's, downscaled). A face no larger than the LR
    size is cut out straight at it, one cubic warp from the photo's pixels (enlarging: nothing is
    lost); a larger one is cut out at the HR size and downscaled by the training degradation."""
    hr_matrix = align.alignment_matrix(face.landmarks, hr_size, face_scale, face.layout)
    if native_size(face, face_scale) > lr_size:
        crop, _ = align.align_face(rgb, face.landmarks, hr_size, face_scale, layout=face.layout)
        return to_lr(crop[None], lr_size)[0], hr_matrix
    r = lr_size / hr_size  # HR crop -> LR face, pixel centres mapped as a resize maps them
    to_lr_frame = np.array([[r, 0.0, (r - 1) / 2], [0.0, r, (r - 1) / 2], [0.0, 0.0, 1.0]])
    matrix = (to_lr_frame @ np.vstack([hr_matrix, [0.0, 0.0, 1.0]]))[:2]
    lr = cv2.warpAffine(np.ascontiguousarray(rgb), matrix, (lr_size, lr_size), flags=cv2.INTER_CUBIC,
                        borderMode=cv2.BORDER_REPLICATE)
    return lr, hr_matrix


def _routed_faces(rgb, faces, router: routing.Router, options: EnhanceOptions, upscale: float, quality: int | None):
    """Per face: (the model's entry or None, SR face or bicubic crop, photo -> HR crop matrix or None)."""
    entries = [router.choose(native_size(f, options.face_scale), upscale, quality) for f in faces]
    results: list = [None] * len(faces)
    for entry in dict.fromkeys(e for e in entries if e is not None):  # one batch per model and input size
        picked = [k for k, e in enumerate(entries) if e == entry]
        crops = [lr_crop(rgb, faces[k], entry.lr_size, entry.hr_size, options.face_scale) for k in picked]
        sr = super_resolve(router.upscaler(entry), np.stack([lr for lr, _ in crops]))
        for k, face, (_, matrix) in zip(picked, sr, crops):
            results[k] = (entry, face, matrix)
    for k, entry in enumerate(entries):
        if entry is None:  # kept bicubic: the face as the enlarged photo has it, for --save-faces
            side = int(np.clip(round(native_size(faces[k], options.face_scale) * upscale), 8, 1024))
            crop, _ = align.align_face(rgb, faces[k].landmarks, side, options.face_scale, layout=faces[k].layout)
            results[k] = (None, crop, None)
    return results


def _bicubic_note(faces, results, face_scale: float, router: routing.Router, upscale: float) -> list[str]:
    kept = [native_size(f, face_scale) for f, (entry, _, _) in zip(faces, results) if entry is None]
    if not kept:
        return []
    if upscale <= 1:
        return [f"{len(kept)} face(s) kept bicubic: the photo is not enlarged"]
    if upscale >= router.larger_min_upscale:
        limit = f"{router.max_face} px"
    else:
        limit = f"{router.largest_input} px; up to {router.max_face} px from --upscale {router.larger_min_upscale:g}"
    return [f"{len(kept)} face(s) kept bicubic: {min(kept):.0f}-{max(kept):.0f} px across, larger than"
            f" the largest face a model takes ({limit})"]


def enhance_photo(rgb: np.ndarray, upscaler, options: EnhanceOptions,
                  aligner=None, canvas_rgb: np.ndarray | None = None) -> PhotoResult:
    """Super-resolve the faces of one RGB uint8 photo (see the module doc); alpha is the caller's.

    `upscaler`: a `routing.Router` (each face to the model that fits it) or one model's upscaler;
    `aligner`: the face detector (default: `make_aligner(options.detector)`).
    `canvas_rgb`: the colours to upscale around the faces when they are not `rgb`'s. A photo with
    alpha passes its own colours here and, as `rgb`, its composite on white (what the detector
    and the model see), so no semi-transparent pixel outside a face changes colour.
    """
    routed = isinstance(upscaler, routing.Router)
    upscale, notes = output_scale(rgb.shape, options.upscale or upscaler.scale, options.max_output_side)
    quality = upscaler.jpeg_quality(rgb) if routed else None  # compressed photos may go to other models
    height, width = rgb.shape[:2]
    out_w, out_h = max(1, round(width * upscale)), max(1, round(height * upscale))
    if options.aligned:
        if height != width:
            raise photos.Skip(NOT_SQUARE, f"{width}x{height}; --aligned expects square face crops")
        model = upscaler.choose(width, upscale, quality) if routed else upscaler
        if model is None:
            face = cv2.resize(rgb, (out_w, out_h), interpolation=cv2.INTER_AREA if upscale < 1 else cv2.INTER_CUBIC)
            return PhotoResult(image=face, faces=[face], landmarks=[], notes=notes, models=["bicubic"])
        if routed:  # the crop fits the model's input: enlarge it to the LR size, no degradation
            lr = cv2.resize(rgb, (model.lr_size, model.lr_size), interpolation=cv2.INTER_CUBIC)[None]
            model, name = upscaler.upscaler(model), model.name
        else:
            lr, name = to_lr(rgb[None], upscaler.lr_size), getattr(upscaler, "name", "model")
        sr = super_resolve(model, lr)
        image = cv2.resize(sr[0], (out_w, out_h), interpolation=cv2.INTER_AREA if out_w < sr.shape[1] else cv2.INTER_CUBIC)
        return PhotoResult(image=image, faces=[sr[0]], landmarks=[], notes=notes, models=[name])
    canvas = cv2.resize(rgb if canvas_rgb is None else np.ascontiguousarray(canvas_rgb), (out_w, out_h),
                        interpolation=cv2.INTER_AREA if upscale < 1 else cv2.INTER_CUBIC)
    faces = detect_faces(aligner or make_aligner(options.detector), rgb, options.detect_side)
    if options.only_largest:
        faces = faces[:1]
    if not faces:
        return PhotoResult(image=canvas, faces=[], landmarks=[], notes=notes + ["no face found: upscaled only"])
    sx, sy = out_w / width, out_h / height
    if routed:
        results = _routed_faces(rgb, faces, upscaler, options, upscale, quality)
        notes = notes + _bicubic_note(faces, results, options.face_scale, upscaler, upscale)
    else:
        aligned = [align.align_face(rgb, f.landmarks, upscaler.hr_size, options.face_scale, layout=f.layout) for f in faces]
        sr = super_resolve(upscaler, to_lr(np.stack([crop for crop, _ in aligned]), upscaler.lr_size))
        results = [(upscaler, face, matrix) for face, (_, matrix) in zip(sr, aligned)]
    for model, face, matrix in reversed(results):  # largest last: it wins where faces overlap
        if model is not None:
            paste_face(canvas, face, paste_matrix(matrix, sx, sy), feather_mask(face.shape[0], options.feather))
    landmarks = [f.landmarks * (sx, sy) + ((sx - 1) / 2, (sy - 1) / 2) for f in faces]
    names = [("bicubic" if m is None else getattr(m, "name", "model")) for m, _, _ in results]
    return PhotoResult(image=canvas, faces=[face for _, face, _ in results], landmarks=landmarks, notes=notes,
                       models=names)
