"""YuNet's alignment template, derived from dlib's, and how well YuNet-found faces align.

    python -m bench.yunet_alignment --derive=../shared/data/celeba/train --limit=800 \\
        --measure=../shared/data/lfw_dev,tests/fixtures --shrink=2,4,8 --json=out/yunet_alignment.json

The training crops are aligned from dlib's 5 points (eye corners + nose base) onto dlib's mean
face (`align._UNIT_TEMPLATE`). YuNet gives other points (eye centres, nose tip, mouth corners),
so their template is derived from the same canonical face: every --derive photo is aligned
from dlib's landmarks (HOG detector), YuNet's landmarks of the same face are mapped into that
crop, and their mean position in the unit face box is the template (printed as
`align._YUNET_UNIT_TEMPLATE` holds it). So is the mean of dlib's detector box in that frame
(`align._DLIB_BOX_UNIT`), and several least-squares weightings of YuNet's points are scored.

On the --measure photos (faces the derivation never saw) each face is aligned at 128 px
(face_scale 0.7) three ways: from dlib's landmarks (the training alignment, the reference),
from YuNet's own landmarks on the derived template ("yunet5"), and from dlib's shape predictor
run in the box `align.dlib_box` derives from YuNet's detection (`FaceAligner.dlib_landmarks`,
what `--detector=yunet` uses): as enhance runs it (faces under `align.LANDMARK_BOX` px searched
on an enlarged copy), and on the photo's own whole pixels. Reported per method:
- eye offset: distance (crop px) between the template's eye centres and where the reference
  eye centres land in the method's crop (mean, 95th percentile, max over eyes);
- crop offset: mean displacement (crop px) between the two crops' frames over the whole crop;
- PSNR (dB, RGB) between the reference crop and the method's crop (identical crops count as
  60 dB, so means stay finite);
- as a yardstick, dlib against itself: the eye offset of dlib's alignment of a 1.03x enlarged,
  2-degree rotated copy of each photo, mapped back.
--shrink=F,...: the same photos shrunk F times (bicubic), faces found by YuNet in the small photo,
and offsets measured against the reference from the *original* photo (scaled by 1 / F).
Prints Markdown; --json writes every number.
"""

from __future__ import annotations

import os

import cv2
import numpy as np
from absl import app, flags
from PIL import Image

from tf_stacksr import files
from tf_stacksr.data import align, detect
from tf_stacksr.metrics import image as image_metrics

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # paths in reports are relative to it

SIZE, FACE_SCALE = 128, 0.7
WEIGHTINGS = {
    "eyes": [1, 1, 0, 0, 0],
    "eyes + 0.1 nose": [1, 1, 0.1, 0, 0],
    "eyes + 0.05 nose, mouth": [1, 1, 0.05, 0.05, 0.05],
    "eyes + 0.1 nose, mouth": [1, 1, 0.1, 0.1, 0.1],
    "eyes + 0.25 nose, mouth": [1, 1, 0.25, 0.25, 0.25],
    "all equal": [1, 1, 1, 1, 1],
}
PSNR_CAP = 60.0
GRID = np.stack(np.meshgrid(np.arange(SIZE), np.arange(SIZE)), -1).reshape(-1, 2).astype(np.float64)
TEMPLATE_EYES = align.eye_centres(align.canonical_landmarks(SIZE, FACE_SCALE))
METHODS = ("yunet5 template", "dlib points in YuNet's box (enhance)", "dlib points in YuNet's box, whole photo pixels")


def read(path: str, shrink: int = 1) -> np.ndarray:
    with Image.open(path) as image:
        image = image.convert("RGB")
        if shrink > 1:
            image = image.resize((image.width // shrink, image.height // shrink), Image.BICUBIC)
        return np.asarray(image)


def same_face(reference: np.ndarray, faces: list[align.Face]) -> align.Face | None:
    """The face of `faces` whose eye centres are nearest the reference's (dlib5), if within a third of the eye span."""
    eyes = align.eye_centres(reference)
    span = float(np.linalg.norm(eyes[0] - eyes[1]))
    best = min(faces, key=lambda f: np.abs(align.eye_centres(f.landmarks, f.layout) - eyes).max(), default=None)
    if best is None or np.abs(align.eye_centres(best.landmarks, best.layout) - eyes).max() > 0.35 * span:
        return None
    return best


def found_pairs(paths, dlib_detector, yunet_detector, limit=None, shrink=1):
    """(path, photo as detected, reference dlib landmarks in its frame, YuNet face) per photo.

    The reference is dlib's main face in the original photo, scaled to the shrunk one."""
    out, missed = [], 0
    for path in paths:
        original = read(path)
        dlib_faces = dlib_detector.detect(original)
        if not dlib_faces:
            continue
        photo = read(path, shrink)
        r = photo.shape[1] / original.shape[1]
        reference = (dlib_faces[0].landmarks.astype(np.float64) + 0.5) * r - 0.5
        face = same_face(reference, yunet_detector.detect(photo))
        if face is None:
            missed += 1
            continue
        out.append((path, photo, reference, face))
        if limit and len(out) >= limit:
            break
    return out, missed


def offsets(reference: np.ndarray, matrix: np.ndarray) -> tuple[np.ndarray, float]:
    """(eye offset per eye [2], mean crop displacement), crop px, of `matrix` vs the reference alignment."""
    reference_matrix = align.alignment_matrix(reference, SIZE, FACE_SCALE)
    eyes = align.eye_centres(align.transform_points(matrix, reference))
    through = align.transform_points(matrix, align.transform_points(align.invert_affine(reference_matrix), GRID))
    return np.linalg.norm(eyes - TEMPLATE_EYES, axis=1), float(np.linalg.norm(through - GRID, axis=1).mean())


def derive(pairs):
    units = []
    for _, _, reference, face in pairs:
        matrix = align.alignment_matrix(reference, SIZE, FACE_SCALE)
        units.append((align.transform_points(matrix, face.landmarks) / SIZE - (1 - FACE_SCALE) / 2) / FACE_SCALE)
    return np.array(units)


def dlib_box_units(paths, dlib_detector, limit):
    """[N, 3]: dlib's detector box (centre x, centre y, side) in the unit face box of its own alignment."""
    rows = []
    for path in paths[:limit]:
        faces = dlib_detector.detect(read(path))
        if not faces:
            continue
        matrix = align.alignment_matrix(faces[0].landmarks, SIZE, FACE_SCALE)
        left, top, right, bottom = faces[0].box
        centre = align.transform_points(matrix, [[(left + right) / 2, (top + bottom) / 2]])[0]
        side = (right - left) * float(np.hypot(matrix[0, 0], matrix[1, 0]))
        rows.append([*((centre / SIZE - (1 - FACE_SCALE) / 2) / FACE_SCALE), side / SIZE / FACE_SCALE])
    return np.array(rows)


def yunet_matrix(landmarks, template_unit, weights):
    target = SIZE * ((1 - FACE_SCALE) / 2 + FACE_SCALE * template_unit)
    return align.similarity_transform(landmarks, target, weights)


def dlib_self_offset(path, dlib_detector):
    """Eye offsets of dlib's alignment of a slightly enlarged and rotated copy, mapped back."""
    photo = read(path)
    h, w = photo.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), 2.0, 1.03)
    moved = cv2.warpAffine(photo, m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    faces = dlib_detector.detect(photo), dlib_detector.detect(moved)
    if not faces[0] or not faces[1]:
        return []
    back = align.transform_points(align.invert_affine(m), faces[1][0].landmarks)
    return list(offsets(faces[0][0].landmarks, align.alignment_matrix(back, SIZE, FACE_SCALE))[0])


def summarise(rows):
    eye = np.array([e for r in rows for e in r["eye_offset"]])
    crop = np.array([r["crop_offset"] for r in rows])
    psnr = np.array([r["psnr"] for r in rows])
    return {"faces": len(rows), "eye_offset_mean": float(eye.mean()), "eye_offset_p95": float(np.percentile(eye, 95)),
            "eye_offset_max": float(eye.max()), "crop_offset_mean": float(crop.mean()),
            "crop_offset_max": float(crop.max()), "psnr_mean": float(psnr.mean()), "psnr_min": float(psnr.min())}


def measure(pairs, refiner):
    """Per method: summary + per-face rows of alignment vs the reference."""
    per = {name: [] for name in METHODS}
    for path, photo, reference, face in pairs:
        reference_crop, _ = align.align_face(photo, reference, SIZE, FACE_SCALE)
        methods = dict(zip(METHODS, (face, refiner.dlib_landmarks(photo, face),
                                     refiner.dlib_landmarks(photo, face, enlarge_to=None))))
        for name, f in methods.items():
            crop, matrix = align.align_face(photo, f.landmarks, SIZE, FACE_SCALE, layout=f.layout)
            eye, shift = offsets(reference, matrix)
            psnr = min(PSNR_CAP, float(image_metrics.psnr(reference_crop[None], crop[None])[0]))
            per[name].append({"file": os.path.relpath(path, REPO), "eye_offset": [float(e) for e in eye],
                              "crop_offset": shift, "psnr": psnr})
    return {name: {**summarise(rows), "per_face": rows} for name, rows in per.items()}


def print_rows(label, results, self_offset=None):
    for name, row in results.items():
        extra = f" | {self_offset:.2f}" if self_offset is not None else " | "
        print(f"| {label} | {name} | {row['faces']} | {row['eye_offset_mean']:.2f} / {row['eye_offset_p95']:.2f} /"
              f" {row['eye_offset_max']:.2f} | {row['crop_offset_mean']:.2f} / {row['crop_offset_max']:.2f} |"
              f" {row['psnr_mean']:.1f} / {row['psnr_min']:.1f}{extra} |")


flags.DEFINE_string("derive", None, "Folder of photos to derive the template from.")
flags.DEFINE_integer("limit", 800, "Faces to derive from.")
flags.DEFINE_list("measure", [], "Folders of photos to measure alignment on.")
flags.DEFINE_list("shrink", [], "Also measure on the --measure folders shrunk by each of these factors.")
flags.DEFINE_string("json", None, "Write every number here.")


def main(argv) -> None:
    del argv
    args = flags.FLAGS
    dlib_detector = align.FaceAligner("hog")
    yunet_detector = detect.YuNetDetector(landmarks="yunet")
    report = {}
    if args.derive:
        paths = files.list_images(args.derive)
        pairs, _ = found_pairs(paths, dlib_detector, yunet_detector, args.limit)
        units = derive(pairs)
        template, sd = units.mean(axis=0), units.std(axis=0)
        boxes = dlib_box_units(paths, dlib_detector, args.limit)
        report["derived"] = {"folder": args.derive, "faces": len(pairs), "yunet_template": template.tolist(),
                             "yunet_template_sd": sd.tolist(), "dlib_box_unit": boxes.mean(axis=0).tolist(),
                             "dlib_box_unit_sd": boxes.std(axis=0).tolist()}
        print(f"_YUNET_UNIT_TEMPLATE from {len(pairs)} faces of {args.derive} (mean; sd):")
        for point, s in zip(template, sd):
            print(f"        [{point[0]:.4f}, {point[1]:.4f}],  # sd {s[0]:.4f}, {s[1]:.4f}")
        print(f"_DLIB_BOX_UNIT (centre x, centre y, side) from {len(boxes)} faces:"
              f" ({', '.join(f'{v:.4f}' for v in boxes.mean(axis=0))}); sd {boxes.std(axis=0).round(4).tolist()}")
        weightings = {}
        for name, weights in WEIGHTINGS.items():
            eye, crop = zip(*(offsets(ref, yunet_matrix(f.landmarks, template, weights)) for _, _, ref, f in pairs))
            weightings[name] = {"eye_offset_mean": float(np.mean(eye)), "crop_offset_mean": float(np.mean(crop))}
        report["weightings"] = weightings
        print("\n| fit weights (eye, eye, nose, mouth, mouth) | eye offset (px @128) | crop offset (px @128) |")
        print("|---|---|---|")
        for name, row in weightings.items():
            print(f"| {name} | {row['eye_offset_mean']:.2f} | {row['crop_offset_mean']:.2f} |")
    if args.measure:
        print("\n| photos | landmarks | faces | eye offset mean / p95 / max (px @128) | crop offset mean / max |"
              " PSNR vs dlib-aligned crop mean / min (dB) | dlib vs itself (moved copy): eye offset |")
        print("|---|---|---|---|---|---|---|")
        for folder in args.measure:
            paths = files.list_images(folder)
            pairs, missed = found_pairs(paths, dlib_detector, yunet_detector)
            results = measure(pairs, dlib_detector)
            selfs = [e for p in paths for e in dlib_self_offset(p, dlib_detector)]
            report.setdefault("agreement", {})[folder] = {**results, "dlib_self_eye_offset_mean": float(np.mean(selfs)),
                                                          "yunet_missed": missed}
            print_rows(folder, results, float(np.mean(selfs)))
            for shrink in map(int, args.shrink):
                pairs, missed = found_pairs(paths, dlib_detector, yunet_detector, shrink=shrink)
                results = measure(pairs, dlib_detector)
                report.setdefault("shrunk", {}).setdefault(folder, {})[shrink] = {**results, "yunet_missed": missed}
                print_rows(f"{folder} / {shrink}", results)
    if args.json:
        files.write_json(args.json, report, sort_keys=False)


if __name__ == "__main__":
    app.run(main)
