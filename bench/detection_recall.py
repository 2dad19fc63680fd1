"""Face detection recall on shrunk photos: how many of the faces found in each photo are still
found when the photo is F times smaller.

    python -m bench.detection_recall --input=../shared/data/lfw_dev --factors=2,4,8 --detectors=yunet,hog \\
        --json=out/detection_recall.json

Per detector, every photo of the folder is searched as is (the reference faces), then shrunk by
each F (bicubic, PIL's antialiased resize, to floor(side / F)) and searched again; a reference
face counts as found when a detection in the shrunk photo, scaled back up, overlaps its box by
IoU >= 0.4 (`detect.match_faces`). Recall = found / reference faces, over three sets: the main
face of each photo (the largest found in the original), every reference face whose box in the
shrunk photo is at least --min_face px (what the detector promises to find), and every reference
face (including background faces shrunk to a few pixels). Also printed: the median main-face
box side at that size (px), extra detections (in the shrunk photo, matching no reference face)
and seconds per photo. Prints a Markdown table; --json writes every number.
"""

from __future__ import annotations

import os
import time

import numpy as np
from absl import app, flags
from PIL import Image

from tf_stacksr import files
from tf_stacksr.data import align, detect

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # paths in reports are relative to it


def scaled(face: align.Face, rx: float, ry: float) -> align.Face:
    """`face` found in a photo resized by (rx, ry), in the original photo's pixels."""
    left, top, right, bottom = face.box
    box = ((left + 0.5) / rx - 0.5, (top + 0.5) / ry - 0.5, (right + 0.5) / rx - 0.5, (bottom + 0.5) / ry - 0.5)
    return align.Face(box=box, score=face.score, landmarks=face.landmarks, layout=face.layout)


def recall(paths: list[str], detector, factors: list[int], min_face: float, min_iou: float = 0.4) -> dict:
    rows = {f: {"reference": 0, "found": 0, "main": 0, "main_found": 0, "big": 0, "big_found": 0, "extra": 0,
                "sides": [], "seconds": 0.0, "missed_files": []} for f in [1] + factors}
    for path in paths:
        with Image.open(path) as image:
            image = image.convert("RGB")
            start = time.perf_counter()
            reference = detector.detect(np.asarray(image))
            rows[1]["seconds"] += time.perf_counter() - start
            rows[1]["reference"] += len(reference)
            for factor in factors:
                w, h = max(1, image.width // factor), max(1, image.height // factor)
                small = np.asarray(image.resize((w, h), Image.BICUBIC))
                start = time.perf_counter()
                found = [scaled(f, w / image.width, h / image.height) for f in detector.detect(small)]
                row = rows[factor]
                row["seconds"] += time.perf_counter() - start
                matches = detect.match_faces(reference, found, min_iou)
                row["reference"] += len(reference)
                row["found"] += sum(m.found is not None for m in matches)
                row["extra"] += len(found) - sum(m.found is not None for m in matches)
                sides = [(f.box[2] - f.box[0]) * w / image.width for f in reference]
                row["sides"] += sides[:1]
                row["main"] += bool(matches)
                row["main_found"] += bool(matches) and matches[0].found is not None
                row["big"] += sum(side >= min_face for side in sides)
                row["big_found"] += sum(side >= min_face and m.found is not None for side, m in zip(sides, matches))
                if any(m.found is None for m in matches):
                    row["missed_files"].append(os.path.relpath(path, REPO))
    out = {}
    for factor in factors:
        row = rows[factor]
        ratio = lambda a, b: a / b if b else float("nan")  # noqa: E731
        out[factor] = {"reference_faces": row["reference"], "found": row["found"],
                       "recall": ratio(row["found"], row["reference"]),
                       "main_faces": row["main"], "main_found": row["main_found"],
                       "recall_main": ratio(row["main_found"], row["main"]),
                       "faces_at_least_min_face": row["big"], "found_at_least_min_face": row["big_found"],
                       "recall_at_least_min_face": ratio(row["big_found"], row["big"]),
                       "median_face_side_px": float(np.median(row["sides"])) if row["sides"] else float("nan"),
                       "extra_detections": row["extra"], "seconds_per_photo": row["seconds"] / len(paths),
                       "missed_files": row["missed_files"]}
    out["photos"] = len(paths)
    out["reference_faces"] = rows[1]["reference"]
    out["seconds_per_photo_original"] = rows[1]["seconds"] / len(paths)
    return out


flags.DEFINE_string("input", None, "Folder of photos (searched recursively).")
flags.DEFINE_list("factors", ["2", "4", "8"], "Factors F to shrink the photos by.")
flags.DEFINE_list("detectors", ["yunet"], f"Detectors to measure, of {', '.join(detect.DETECTORS)}.")
flags.DEFINE_float("min_face", detect.MIN_FACE, "yunet's smallest face (px); also the size of the 'faces >= N px' set.")
flags.DEFINE_integer("limit", None, "Only the first N photos.")
flags.DEFINE_string("json", None, "Write every number here.")


def main(argv) -> None:
    del argv
    args = flags.FLAGS
    unknown = sorted(set(args.detectors) - set(detect.DETECTORS))
    if not args.input or unknown:
        raise app.UsageError(f"--detectors: unknown {unknown}" if unknown
                             else "--input: a folder of photos is required")
    factors = [int(f) for f in args.factors]
    paths = files.list_images(args.input)[: args.limit]
    report = {"folder": args.input, "factors": factors, "detectors": {}}
    print(f"{len(paths)} photos of {args.input}\n")
    print(f"| detector | shrunk by | main face box (px, median) | main faces found | faces >= {args.min_face:g} px found |"
          " all faces found | extra detections | s / photo |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.detectors:
        result = recall(paths, detect.make(name, min_face=args.min_face), factors, args.min_face)
        report["detectors"][name] = result
        print(f"| {name} | 1 (reference) | | {len(paths)} photos | | {result['reference_faces']} faces | |"
              f" {result['seconds_per_photo_original']:.3f} |")
        for factor in factors:
            row = result[factor]
            cell = lambda k, n: f"{row[k]}/{row[n]} = **{100 * row[k] / max(row[n], 1):.1f}%**"  # noqa: E731
            print(f"| {name} | {factor} | {row['median_face_side_px']:.0f} | {cell('main_found', 'main_faces')} |"
                  f" {cell('found_at_least_min_face', 'faces_at_least_min_face')} | {cell('found', 'reference_faces')} |"
                  f" {row['extra_detections']} | {row['seconds_per_photo']:.3f} |")
    if args.json:
        files.write_json(args.json, report, sort_keys=False)


if __name__ == "__main__":
    app.run(main)
