"""On photos as they are (not shrunk), is any face that `enhance` returns blurrier than bicubic's?

    python -m bench.photo_sharpness --input=../shared/data/lfw_dev --upscale=4 --output_dir=out/photo_sharpness

There is no sharper original to compare with when a photo is enlarged as it is, so this check
is no-reference: each photo is enlarged `--upscale` times by plain bicubic (OpenCV, the canvas
enhance pastes into) and by `enhance` with its defaults (`photo_methods.run_enhance`: YuNet,
each face routed by its size), and every face found on the original photo (dlib HOG + 5
landmarks, `photo_bench.reference_faces`, so enhance is not judged on faces it found itself)
is compared on its box, enlarged by 20% each side and mapped to the output:

    sharpness = mean squared Sobel gradient of the luma (BT.601) over the box

A face counts as blurrier when enhance's sharpness is below `1 - --tolerance` of bicubic's.
Writes results.md and results.json (per face: size, model that ran, sharpness ratio).
"""

from __future__ import annotations

import os

import cv2
import numpy as np
from absl import app, flags
from tqdm import tqdm

from tf_stacksr.data import align
from tf_stacksr.evaluation import photo_bench, photo_inputs, photo_methods, photo_report
from tf_stacksr.metrics import image as image_metrics

flags.DEFINE_string("input", None, "Folder of photos (searched recursively).")
flags.DEFINE_float("upscale", 4.0, "Whole-photo factor enhance and bicubic enlarge by.")
flags.DEFINE_integer("limit", None, "Only the first N photos.")
flags.DEFINE_float("tolerance", 0.02, "A face is blurrier when its sharpness is below (1 - tolerance) x bicubic's.")
flags.DEFINE_string("output_dir", "out/photo_sharpness", "Where results.md and results.json go.")


def sharpness(rgb: np.ndarray) -> float:
    """Mean squared Sobel gradient magnitude of the luma: the high-frequency energy a blur removes."""
    y = image_metrics.rgb_to_y(rgb)[0, ..., 0].astype(np.float32)
    gx, gy = cv2.Sobel(y, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(y, cv2.CV_32F, 0, 1, ksize=3)
    return float(np.mean(gx * gx + gy * gy))


def scaled_box(box, factor: float, margin: float, shape) -> tuple[int, int, int, int]:
    """The face box in output pixels (pixel centres mapped as a resize maps them), enlarged by `margin`."""
    mapped = [v * factor + (factor - 1) / 2 for v in box]
    return photo_bench.enlarged_box(mapped, margin, shape)


def measure(paths, upscale: float, tolerance: float) -> dict:
    aligner = align.FaceAligner()
    method = photo_methods.build(photo_methods.ENHANCE, upscale)
    faces_out, skipped = [], 0
    for path in tqdm(paths, desc="photos", unit="photo"):
        try:
            photo = photo_inputs.read_photo(path)
        except OSError:
            skipped += 1
            continue
        faces = photo_bench.reference_faces(photo, aligner)
        if not faces:
            continue
        height, width = photo.shape[:2]
        bicubic = cv2.resize(photo, (round(width * upscale), round(height * upscale)), interpolation=cv2.INTER_CUBIC)
        enhanced = method(photo).image
        for face in faces:
            x0, y0, x1, y1 = scaled_box(face.box, upscale, 0.2, bicubic.shape)
            ratio = sharpness(enhanced[y0:y1, x0:x1]) / max(sharpness(bicubic[y0:y1, x0:x1]), 1e-9)
            faces_out.append({"photo": os.path.basename(path), "face_px": round(face.box[2] - face.box[0], 1),
                              "sharpness_ratio": round(ratio, 4), "blurrier": ratio < 1 - tolerance})
    ratios = np.array([f["sharpness_ratio"] for f in faces_out]) if faces_out else np.zeros(0)
    return {
        "upscale": upscale,
        "tolerance": tolerance,
        "photos": len(paths) - skipped,
        "skipped": skipped,
        "faces": len(faces_out),
        "blurrier_faces": int(sum(f["blurrier"] for f in faces_out)),
        "sharpness_ratio": {q: float(np.quantile(ratios, p)) if len(ratios) else None
                            for q, p in (("min", 0), ("median", 0.5), ("max", 1))},
        "face_px_median": float(np.median([f["face_px"] for f in faces_out])) if faces_out else None,
        "per_face": faces_out,
    }


def markdown(result: dict, command: str) -> str:
    r = result["sharpness_ratio"]

    def fmt(value):
        return "—" if value is None else f"{value:.3f}"

    return "\n".join([
        f"# Faces of photos enlarged x{result['upscale']:g} as they are: enhance vs bicubic sharpness", "",
        f"`{command}`", "",
        "| photos | faces (median box px) | blurrier than bicubic | sharpness ratio min / median / max |",
        "|---:|---:|---:|---|",
        (f"| {result['photos']} | {result['faces']} ({result['face_px_median'] or 0:.0f}) | {result['blurrier_faces']}"
         f" | {fmt(r['min'])} / {fmt(r['median'])} / {fmt(r['max'])} |"), "",
        ("Sharpness: mean squared Sobel gradient of the luma over each face box (+20% each side);"
         f" blurrier: below {1 - result['tolerance']:g} x bicubic's."), ""])


def main(argv) -> None:
    del argv
    args = flags.FLAGS
    try:
        paths = photo_inputs.list_photos(args.input or "", args.limit)
    except ValueError as err:
        raise app.UsageError(str(err)) from None
    result = measure(paths, args.upscale, args.tolerance)
    command = (f"python -m bench.photo_sharpness --input={args.input} --upscale={args.upscale:g}"
               + (f" --limit={args.limit}" if args.limit else ""))
    text = markdown(result, command)
    photo_report.write_files(args.output_dir, {**result, "command": command}, text)
    print(text)


if __name__ == "__main__":
    app.run(main)
