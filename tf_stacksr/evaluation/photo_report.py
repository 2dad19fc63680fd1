"""Reports of the whole-photo benchmark (`photo_bench`): results.json, results.md (one table per
factor and JPEG quality) and comparison.png (small input | each method | original, whole photos)."""

from __future__ import annotations

import math
import os
from typing import Sequence

import cv2
import numpy as np

from tf_stacksr import files
from tf_stacksr.evaluation import eval_report
from tf_stacksr.metrics import fid, identity, sface

JSON_FILE = "results.json"
MARKDOWN_FILE = "results.md"
FIGURE_FILE = "comparison.png"
TILE = 256  # longest side of a photo in the figure (larger photos are shrunk to it)
HEADER = 22

# (key, header, format) of each table's metric columns.
_COLUMNS = (
    ("psnr_y", "face PSNR-Y (dB) ↑", "{:.2f}"),
    ("ssim_y", "face SSIM-Y ↑", "{:.4f}"),
    ("fid", "FID ↓", "{:.2f}"),
    ("sface_cosine", "SFace cosine ↑", "{:.3f}"),
    ("sface_same_person_rate", "same person (SFace) ↑", "{:.1%}"),
    ("dlib_distance", "dlib distance ↓", "{:.3f}"),
    ("recall", "face recall ↑", "{:.1%}"),
    ("seconds_per_photo", "s/photo", "{:.3f}"),
)


def _cell(value, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float) and math.isinf(value):
        return "∞"
    return fmt.format(value)


def _setting_title(setting: dict) -> str:
    return f"x{setting['factor']}, " + (f"JPEG q{setting['jpeg']}" if setting["jpeg"] else "no JPEG")


def table(setting: dict, report: dict) -> list[str]:
    columns = [c for c in _COLUMNS if report.get("identity") or c[0] not in ("sface_cosine", "sface_same_person_rate",
                                                                             "dlib_distance")]
    median = report.get("face_box_median_px")
    size = f"; faces in the input: median box {median / setting['factor']:.0f} px wide" if median else ""
    lines = [f"### {_setting_title(setting)}{size}", "",
             "| method | " + " | ".join(h for _, h, _ in columns) + " |",
             "|---|" + "---:|" * len(columns)]
    for row in setting["rows"]:
        lines.append(f"| {row['method']} | " + " | ".join(_cell(row.get(k), f) for k, _, f in columns) + " |")
    lines.append("")
    for row in setting["rows"]:
        if row.get("difference"):
            lines += [_difference_line(row), ""]
    return lines


# (name, unit, decimals) of each score `photo_bench.PAIRED` compares face by face, and FID.
_DIFFERENCES = {"psnr_y": ("face PSNR-Y", " dB", 2), "sface_cosine": ("SFace cosine", "", 3),
                "dlib_distance": ("dlib distance", "", 3), "fid": ("FID", "", 1)}


def _difference_line(row: dict) -> str:
    """"method − first method on the same faces (± 2 standard errors): ..." over the paired scores."""
    parts = [f"{name} {d['mean']:+.{k}f} ± {2 * d['se']:.{k}f}{unit}" for key, (name, unit, k) in _DIFFERENCES.items()
             if (d := row["difference"].get(key)) is not None]
    return (f"{row['method']} − {row['difference']['from']} on the same faces (± 2 standard errors; FID's from "
            f"resampling the faces): "
            + (", ".join(parts) if parts else "—") + ".")


def markdown(report: dict) -> str:
    """Every (factor, quality) table and the facts needed to read them."""
    c = report["counts"]
    n = c["faces"]
    lines = [
        f"## Whole photos: {report['input']}",
        "",
        f"Photos: n = {c['photos']} ({c['without_faces']} without a face, {c['skipped']} unreadable or too small skipped); "
        f"faces: n = {n} (dlib HOG on the original photo; median box {_cell(report.get('face_box_median_px'), '{:.0f}')} px wide).",
        "Input: the photo (cropped to a multiple of every factor) shrunk by the factor with PIL's antialiased bicubic, "
        "then JPEG-compressed at quality q where q > 0; each method upscales it back to the original size.",
        "",
    ]
    for note in report.get("notes", []):
        lines += [f"Note: {note}", ""]
    for setting in report["settings"]:
        lines += table(setting, report)
    lines.append(f"Face PSNR/SSIM: BT.601 luma of the face box enlarged by {report['box_margin']:.0%} each side, "
                 "mean over faces (∞ when a method returns the original). "
                 f"FID: aligned {report['fid_crop']} px face crops (landmarks of the original, applied to both) of each "
                 f"method vs of the originals, standard TF-Inception, n = {n} per set"
                 + (f" (below {fid.MIN_RELIABLE_N:,}: biased upwards, compare rows only at equal n)." if n < fid.MIN_RELIABLE_N else "."))
    if report.get("identity"):
        lines.append(f"Identity: SFace (OpenCV Zoo, int8; a recognizer no model here trains against) cosine of the output's "
                     f"face vs the original's, on 112 px ArcFace crops from YuNet's points on the original "
                     f"({c['arcface_from_dlib']} faces without a YuNet match used dlib's eyes); same person if cosine >= "
                     f"{sface.SAME_PERSON_COSINE}. dlib distance: dlib's 128-d descriptor (also behind our identity loss), "
                     f"same person below {identity.SAME_PERSON_THRESHOLD}.")
    lines.append("Face recall: original faces with a face found by the method (enhance detects on its small input) inside "
                 "their enlarged box; — for methods that find no faces. s/photo: the method call alone, on this machine.")
    if report.get("command"):
        lines += ["", f"Command: `{report['command']}`"]
    lines.append(f"Wall time: {report['wall_time_s']:.0f} s.")
    return "\n".join(lines) + "\n"


def write_files(output_dir: str, data: dict, text: str) -> None:
    """`data` as results.json and `text` as results.md in `output_dir` (atomically, folder made)."""
    files.write_json(os.path.join(output_dir, JSON_FILE), data)
    files.write_text(os.path.join(output_dir, MARKDOWN_FILE), text)


def write_reports(report: dict, output_dir: str) -> None:
    write_files(output_dir, eval_report._json_safe(report), markdown(report))


def _fit(image: np.ndarray, height: int, width: int, interpolation: int) -> np.ndarray:
    return cv2.resize(image, (width, height), interpolation=interpolation)


def comparison_figure(rows: Sequence[tuple], methods: Sequence[str], setting: tuple[int, int], path: str) -> None:
    """PNG: one row per photo, columns small input (pixels enlarged, nearest) | each method | original."""
    if not rows:
        return
    factor, quality = setting
    titles = [f"input 1/{factor}" + (f" q{quality}" if quality else ""), *methods, "original"]
    shapes = []
    for _, _, _, ref in rows:
        r = min(1.0, TILE / max(ref.shape[:2]))
        shapes.append((max(1, round(ref.shape[0] * r)), max(1, round(ref.shape[1] * r))))
    pad, width = 2, max(w for _, w in shapes)
    canvas = np.full((HEADER + sum(h + pad for h, _ in shapes) + pad, len(titles) * (width + pad) + pad, 3), 255, np.uint8)
    y = HEADER + pad
    for (name, small, shown, ref), (h, w) in zip(rows, shapes):
        tiles = [_fit(small, h, w, cv2.INTER_NEAREST)]
        tiles += [_fit(shown[m], h, w, cv2.INTER_AREA) for m in methods] + [_fit(ref, h, w, cv2.INTER_AREA)]
        for c, tile in enumerate(tiles):
            x = pad + c * (width + pad)
            canvas[y:y + h, x:x + w] = tile
        y += h + pad
    for c, title in enumerate(titles):
        cv2.putText(canvas, title[: width // 8], (pad + c * (width + pad) + 2, HEADER - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (0, 0, 0), 1, cv2.LINE_AA)
    files.write_png(path, canvas)
