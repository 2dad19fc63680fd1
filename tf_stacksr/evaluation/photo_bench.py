"""Whole-photo benchmark: shrink real photos, upscale them back with each method, score the faces.

For every photo of a folder, every factor F and every JPEG quality q (0 = none):
1. the reference is the photo cropped (bottom and right) to a multiple of every F, so that all
   factors share one reference and the upscaled output has its exact size;
2. the input is the reference shrunk by F (PIL bicubic, antialiased), JPEG-compressed at q when
   q > 0, as a photo sent or stored small would be;
3. each method (`photo_methods`) upscales the input by F, and its output is compared with the
   reference on the faces found on the REFERENCE (`reference_faces`: dlib HOG for now), so a
   method is never judged on faces it found itself:
   - PSNR / SSIM on the luma (Y) of the face box enlarged by `box_margin` each side;
   - FID between the aligned face crops (`align.align_face` from the reference's landmarks,
     applied to both images) of the outputs and of the references;
   - identity: SFace (`metrics.sface`, a recognizer no model here trains against; ArcFace crops
     from YuNet's points on the reference, or dlib's eyes where YuNet found none) cosine of
     output vs reference, and dlib's descriptor distance (`metrics.identity`) beside it;
   - detection recall of methods that say which faces they found (`enhance`): reference faces
     with a found face inside their box, over all reference faces;
   - seconds per photo of the method call alone.
Reports (`photo_report`): results.json, results.md (one table per (F, q)), comparison.png.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
import warnings
from typing import Callable, Mapping, Sequence

import numpy as np
from absl import logging
from PIL import Image
from tqdm import tqdm

from tf_stacksr.data import align
from tf_stacksr.evaluation import photo_inputs, photo_methods, photo_report
from tf_stacksr.metrics import fid, image, sface

FID_CROP = 128  # aligned face crop side for FID and dlib's descriptor (face ~0.7 of it, ~90 px)
_FID_BATCH = 32


@dataclasses.dataclass(frozen=True)
class PhotoBenchOptions:
    input: str
    factors: tuple[int, ...] = (2, 4, 8)
    jpeg: tuple[int, ...] = (0, 50)
    methods: tuple[str, ...] = photo_methods.DEFAULT_METHODS
    output_dir: str = "photo_bench"
    limit: int | None = None
    figure_photos: int = 3
    figure_factor: int = 4  # the comparison figure's setting: this factor (else the middle one), q = jpeg[0]
    identity: bool = True  # SFace and dlib identity scores
    box_margin: float = 0.2
    fid_cache: str | None = None
    command: str = ""

    def __post_init__(self) -> None:
        if not self.factors or any(int(f) < 2 or int(f) > 16 for f in self.factors):
            raise ValueError(f"--factors={','.join(map(str, self.factors))}: expected integer factors in [2, 16]")
        if not self.jpeg or any(not 0 <= int(q) <= 100 for q in self.jpeg):
            raise ValueError(f"--jpeg={','.join(map(str, self.jpeg))}: expected JPEG qualities in [1, 100], 0 for none")
        if not self.methods:
            raise ValueError("--methods: expected at least one photo method")


# ---- reference faces ----------------------------------------------------------------------
def reference_faces(photo: np.ndarray, aligner: align.FaceAligner) -> list[align.Face]:
    """The faces every method is scored on, found on the reference photo: swap the detector here."""
    return aligner.detect(photo)


@dataclasses.dataclass
class RefFace:
    """One reference face, and everything an output's face is compared with."""

    face: align.Face
    region: tuple[int, int, int, int]  # x0, y0, x1, y1: the box enlarged by the margin, clipped
    arcface_matrix: np.ndarray  # 2x3 photo -> SFace's 112x112 frame
    arcface_from: str  # "yunet" or "dlib" (eyes only)
    crop: np.ndarray  # aligned FID_CROP crop of the reference
    sface: np.ndarray | None = None  # reference embedding
    dlib_box: object = None  # dlib rectangle on the reference crop's 256 px working copy
    descriptor: np.ndarray | None = None


def enlarged_box(box: Sequence[float], margin: float, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """The box grown by `margin` of its size on every side, in whole pixels inside the photo."""
    left, top, right, bottom = box
    dx, dy = margin * (right - left), margin * (bottom - top)
    x0, y0 = max(0, int(math.floor(left - dx))), max(0, int(math.floor(top - dy)))
    x1, y1 = min(shape[1], int(math.ceil(right + dx)) + 1), min(shape[0], int(math.ceil(bottom + dy)) + 1)
    return x0, y0, x1, y1


def _inside(point: np.ndarray, box: Sequence[float]) -> bool:
    return box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3]


def match_yunet(face: align.Face, found: Sequence[sface.YuNetFace], used: set[int]) -> int | None:
    """Index of the YuNet face whose eyes lie in dlib's box, nearest to dlib's eyes (None if none)."""
    eyes = align.eye_centres(face.landmarks).mean(axis=0)
    best, best_d = None, math.inf
    for k, candidate in enumerate(found):
        mid = candidate.points[:2].mean(axis=0)
        d = float(np.linalg.norm(mid - eyes))
        if k not in used and _inside(mid, enlarged_box(face.box, 0.1, (1 << 30, 1 << 30))) and d < best_d:
            best, best_d = k, d
    return best


def count_recalled(refs: Sequence[RefFace], found: Sequence[np.ndarray]) -> int:
    """Reference faces with a found face (the mean of its landmarks) inside their enlarged box, each used once."""
    used, hits = set(), 0
    for ref in refs:
        for k, points in enumerate(found):
            if k not in used and _inside(np.asarray(points, np.float64).mean(axis=0), ref.region):
                used.add(k)
                hits += 1
                break
    return hits


class _Judges:
    """The detectors and recognizers of the benchmark, loaded once."""

    def __init__(self, identity_scores: bool):
        self.aligner = align.FaceAligner()
        self.sface = sface.SFace() if identity_scores else None
        self.yunet = sface.YuNet() if identity_scores else None
        if identity_scores:
            from tf_stacksr.metrics import identity

            self.dlib = identity.FaceIdentity()
        else:
            self.dlib = None

    def reference(self, photo: np.ndarray, margin: float) -> list[RefFace]:
        faces = reference_faces(photo, self.aligner)
        yunet = self.yunet(photo) if self.yunet is not None and faces else []
        refs, used = [], set()
        for face in faces:
            k = match_yunet(face, yunet, used)
            if k is not None:
                used.add(k)
            matrix = sface.arcface_matrix(yunet[k].points) if k is not None else sface.arcface_matrix_from_dlib(face.landmarks)
            refs.append(RefFace(face, enlarged_box(face.box, margin, photo.shape), matrix,
                                "yunet" if k is not None else "dlib", self.crop(photo, face)))
        if refs and self.sface is not None:
            embeddings = self.sface(np.stack([sface.crop(photo, r.arcface_matrix) for r in refs]))
            crops = [r.crop for r in refs]
            boxes, _ = self.dlib.face_boxes(crops)
            descriptors = self.dlib.descriptors(crops, boxes)
            for r, e, b, d in zip(refs, embeddings, boxes, descriptors):
                r.sface, r.dlib_box, r.descriptor = e, b, d
        return refs

    @staticmethod
    def crop(photo: np.ndarray, face: align.Face) -> np.ndarray:
        return align.align_face(photo, face.landmarks, FID_CROP)[0]


# ---- scores --------------------------------------------------------------------------------
class _FidSet:
    """Inception features of a stream of crops, computed in batches: their statistics, and one
    row per face for resampling."""

    def __init__(self, features: Callable):
        self.features, self.acc, self.rows, self.pending = features, fid.StatsAccumulator(), [], []

    def add(self, crop: np.ndarray) -> None:
        self.pending.append(crop)
        if len(self.pending) >= _FID_BATCH:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.rows.append(self.features(np.stack(self.pending)))
            self.acc.update(self.rows[-1])
            self.pending = []

    def all(self) -> np.ndarray:
        self.flush()
        return np.concatenate(self.rows) if self.rows else np.zeros((0, 0))

    def stats(self) -> fid.FidStats | None:
        self.flush()
        return self.acc.result() if self.acc.n >= 2 else None


class _MethodScores:
    """Running scores of one method at one (factor, quality)."""

    def __init__(self, name: str, features: Callable):
        self.name = name
        self.values: dict[str, list[float]] = {k: [] for k in ("psnr_y", "ssim_y", "sface_cosine", "dlib_distance")}
        self.seconds: list[float] = []
        self.fid = _FidSet(features)
        self.recalled, self.recall_faces = 0, 0
        self.reports_faces = True

    def add_photo(self, output: np.ndarray, reference: np.ndarray, refs: Sequence[RefFace], judges: _Judges,
                  seconds: float, found: list | None) -> None:
        self.seconds.append(seconds)
        if found is None:
            self.reports_faces = False
        else:
            self.recalled += count_recalled(refs, found)
            self.recall_faces += len(refs)
        if not refs:
            return
        for ref in refs:
            x0, y0, x1, y1 = ref.region
            y_out, y_ref = image.rgb_to_y(output[y0:y1, x0:x1]), image.rgb_to_y(reference[y0:y1, x0:x1])
            self.values["psnr_y"].append(float(image.psnr(y_out, y_ref)[0]))
            if min(x1 - x0, y1 - y0) >= 11:
                self.values["ssim_y"].append(float(image.ssim(y_out, y_ref)[0]))
        crops = [_Judges.crop(output, ref.face) for ref in refs]
        for crop in crops:
            self.fid.add(crop)
        if judges.sface is not None:
            embeddings = judges.sface(np.stack([sface.crop(output, ref.arcface_matrix) for ref in refs]))
            self.values["sface_cosine"].extend(sface.cosine(embeddings, np.stack([r.sface for r in refs])).tolist())
            descriptors = judges.dlib.descriptors(crops, [r.dlib_box for r in refs])
            from tf_stacksr.metrics import identity

            self.values["dlib_distance"].extend(identity.distances(descriptors, np.stack([r.descriptor for r in refs])).tolist())

    def summary(self, reference_fid: fid.FidStats | None) -> dict:
        from tf_stacksr.metrics import identity

        v = self.values
        mean = lambda xs: float(np.mean(xs)) if xs else float("nan")  # noqa: E731
        stats = self.fid.stats()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the small-n bias is stated once in the report
            fid_value = fid.fid(stats, reference_fid) if stats is not None and reference_fid is not None else float("nan")
        return {
            "method": self.name,
            "n_faces": len(v["psnr_y"]),
            "psnr_y": mean(v["psnr_y"]),
            "ssim_y": mean(v["ssim_y"]),
            "fid": fid_value,
            "sface_cosine": mean(v["sface_cosine"]),
            "sface_same_person_rate": mean([c >= sface.SAME_PERSON_COSINE for c in v["sface_cosine"]]),
            "dlib_distance": mean(v["dlib_distance"]),
            "dlib_same_person_rate": mean([d < identity.SAME_PERSON_THRESHOLD for d in v["dlib_distance"]]),
            "recall": self.recalled / self.recall_faces if self.reports_faces and self.recall_faces else None,
            "seconds_per_photo": mean(self.seconds),
        }


# Per-face scores each method is compared on, face by face, with the first method of a run.
PAIRED = ("psnr_y", "sface_cosine", "dlib_distance")


def paired_difference(values: Sequence[float], baseline: Sequence[float]) -> dict | None:
    """Mean and standard error of `values - baseline`, face by face, over the faces where both are
    finite (a PSNR is infinite where a method returns the original); None below 2 such faces."""
    if len(values) != len(baseline):
        return None
    d = np.asarray(values, np.float64) - np.asarray(baseline, np.float64)
    d = d[np.isfinite(d)]
    if len(d) < 2:
        return None
    return {"mean": float(d.mean()), "se": float(d.std(ddof=1) / np.sqrt(len(d))), "n": int(len(d))}


def setting_rows(scores: Sequence[_MethodScores], reference_fid: _FidSet) -> list[dict]:
    """Each method's summary; after the first, each with its paired differences from the first
    (FID's by resampling the faces, `fid.paired_fid_difference`)."""
    ref_stats, ref_features = reference_fid.stats(), reference_fid.all()
    rows = [s.summary(ref_stats) for s in scores]
    first = scores[0]
    for score, row in zip(scores[1:], rows[1:]):
        row["difference"] = {"from": first.name,
                             **{k: paired_difference(score.values[k], first.values[k]) for k in PAIRED},
                             "fid": fid.paired_fid_difference(score.fid.all(), first.fid.all(), ref_features)}
    return rows


def _as_output(name: str, result, shape: tuple[int, ...]) -> tuple[np.ndarray, list | None]:
    if isinstance(result, photo_methods.Upscaled):
        out, found = result.image, result.face_points
    else:
        out, found = result, None
    out = np.asarray(out)
    if out.shape != shape or out.dtype != np.uint8:
        raise ValueError(f"photo method {name!r} returned {out.dtype} {out.shape}; expected uint8 {shape}")
    return out, found


# ---- the run ---------------------------------------------------------------------------------
def _open_methods(opts: PhotoBenchOptions, factories: Mapping[str, Callable] | None) -> tuple[list[str], list[str]]:
    """The method names that can run, and a note for each one that cannot."""
    names, notes = [], []
    for name in dict.fromkeys(opts.methods):
        if factories and name in factories:
            names.append(name)
            continue
        why = photo_methods.unavailable(name)
        if why is None:
            names.append(name)
        elif name in photo_methods.REGISTRY:
            notes.append(f"{name} skipped: {why}")
            logging.warning("%s skipped: %s", name, why)
        else:
            raise ValueError(f"--methods: {why}")
    if not names:
        raise ValueError("--methods: none of the methods can run here (" + "; ".join(notes) + ")")
    return names, notes


def run(opts: PhotoBenchOptions, factories: Mapping[str, Callable[[int], photo_methods.PhotoMethod]] | None = None) -> dict:
    """Benchmark every method on every photo of `opts.input`; writes the reports and returns them.

    `factories` adds or replaces methods: name -> (factor -> method), as `photo_methods.REGISTRY`.
    """
    start = time.time()
    paths = photo_inputs.list_photos(opts.input, opts.limit)
    names, notes = _open_methods(opts, factories)
    factors, qualities = [int(f) for f in opts.factors], [int(q) for q in opts.jpeg]
    settings = [(f, q) for f in factors for q in qualities]
    build = lambda name, f: (factories[name] if factories and name in factories else photo_methods.REGISTRY[name])(f)  # noqa: E731
    methods = {(f, name): build(name, f) for f in factors for name in names}
    judges = _Judges(opts.identity)
    features = fid.shared_features(opts.fid_cache)
    reference_fid = _FidSet(features)
    scores = {s: [_MethodScores(name, features) for name in names] for s in settings}
    figure_factor = opts.figure_factor if opts.figure_factor in factors else factors[len(factors) // 2]
    figure_setting, figure_rows = (figure_factor, qualities[0]), []
    counts = {"photos": 0, "skipped": 0, "without_faces": 0, "faces": 0, "arcface_from_dlib": 0}
    face_widths, skipped, warmed = [], [], set()
    for path in tqdm(paths, desc="photos", unit="photo"):
        try:
            reference = photo_inputs.reference_photo(photo_inputs.read_photo(path), factors)
            if min(reference.shape[:2]) < 8 * max(factors):
                raise ValueError(f"too small ({reference.shape[1]}x{reference.shape[0]})")
        except (OSError, ValueError, Image.DecompressionBombError) as err:
            counts["skipped"] += 1
            skipped.append(f"{os.path.relpath(path, opts.input)}: {err}")
            continue
        counts["photos"] += 1
        refs = judges.reference(reference, opts.box_margin)
        counts["faces"] += len(refs)
        counts["without_faces"] += not refs
        counts["arcface_from_dlib"] += sum(r.arcface_from == "dlib" for r in refs)
        face_widths.extend(r.face.box[2] - r.face.box[0] for r in refs)
        for r in refs:
            reference_fid.add(r.crop)
        for f, q in settings:
            small = photo_inputs.jpeg(photo_inputs.shrink(reference, f), q)
            shown = {}
            for name, score in zip(names, scores[(f, q)]):
                if (f, name) not in warmed:  # first call untimed: graph tracing, model loading
                    methods[(f, name)](small)
                    warmed.add((f, name))
                t = time.perf_counter()
                result = methods[(f, name)](small)
                seconds = time.perf_counter() - t
                out, found = _as_output(name, result, reference.shape)
                score.add_photo(out, reference, refs, judges, seconds, found)
                shown[name] = out
            if (f, q) == figure_setting and refs and len(figure_rows) < opts.figure_photos:
                figure_rows.append((os.path.relpath(path, opts.input), small, shown, reference))
    if counts["photos"] == 0:
        raise ValueError(f"--input={opts.input}: none of {len(paths)} images could be read: {skipped[:3]}")
    report = {
        "input": opts.input,
        "methods": names,
        "notes": notes,
        "counts": counts,
        "skipped": skipped[:20],
        "face_box_median_px": float(np.median(face_widths)) if face_widths else None,
        "identity": opts.identity,
        "box_margin": opts.box_margin,
        "fid_crop": FID_CROP,
        "settings": [{"factor": f, "jpeg": q, "rows": setting_rows(scores[(f, q)], reference_fid)} for f, q in settings],
        "figure": {"factor": figure_setting[0], "jpeg": figure_setting[1], "photos": [r[0] for r in figure_rows]},
        "command": opts.command,
        "wall_time_s": round(time.time() - start, 1),
    }
    os.makedirs(opts.output_dir, exist_ok=True)
    photo_report.write_reports(report, opts.output_dir)
    photo_report.comparison_figure(figure_rows, names, figure_setting, os.path.join(opts.output_dir, photo_report.FIGURE_FILE))
    return report
