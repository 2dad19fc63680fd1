"""Evaluation reports: results.json (machine-readable), results.md (shaped like the paper's
Tables 1-2: one row per method, FID beside PSNR/SSIM, plus identity) and comparison.png
(like the paper's Fig. 5: LR input | bicubic | each method | ground truth, a few faces)."""

from __future__ import annotations

import json
import math
import os
from typing import Sequence

import numpy as np

from tf_stacksr import files, visualize

JSON_FILE = "results.json"
MARKDOWN_FILE = "results.md"
FIGURE_FILE = "comparison.png"
_MIN_TILE = 128

# (key, header, format) of the Markdown table's metric columns.
_COLUMNS = (
    ("fid", "FID ↓", "{:.2f}"),
    ("psnr_y", "PSNR-Y (dB) ↑", "{:.2f}"),
    ("ssim_y", "SSIM-Y ↑", "{:.4f}"),
    ("psnr_rgb", "PSNR-RGB (dB) ↑", "{:.2f}"),
    ("ssim_rgb", "SSIM-RGB ↑", "{:.4f}"),
    ("identity_distance", "ID distance ↓", "{:.3f}"),
    ("same_person_rate", "same person ↑", "{:.1%}"),
    ("verification_accuracy", "verification acc. ↑", "{:.1%}"),
)


def _cell(value, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return fmt.format(value)


def _json_safe(value):
    """NaN/inf -> None (JSON has no NaN), numpy scalars -> Python."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def markdown(report: dict) -> str:
    """The results table and the facts needed to read it (data, n, protocol notes)."""
    title = f"{report['lr_size']} to {report['hr_size']} (x{report['scale']})"
    present = [c for c in _COLUMNS if any(c[0] in row for row in report["methods"])]
    lines = [
        f"## {title}: {report['data']}",
        "",
        f"Faces: n = {report['n_faces']} ({report['source']}; {report['n_skipped']} unreadable skipped). "
        "LR = antialiased bicubic downscale of the HR face, quantised to uint8 (the training degradation).",
        "",
        "| method | " + " | ".join(h for _, h, _ in present) + " | n |",
        "|---|" + "---:|" * (len(present) + 1),
    ]
    for row in report["methods"]:
        lines.append(f"| {row['method']} | " + " | ".join(_cell(row.get(k), f) for k, _, f in present) + f" | {row['n']} |")
    lines += ["", f"FID: SR set vs HR set, standard TF-Inception pool_3 features, n = {report['n_faces']} per set"
              + (" (below 2,048: biased upwards, compare only at equal n)." if report["n_faces"] < 2048 else ".")]
    lines.append("PSNR/SSIM: per-image means, data range 255, no border crop; Y = BT.601 luma (as most SR papers), "
                 "RGB = mean over channels; SSIM with an 11x11 Gaussian window (sigma 1.5).")
    ident = report.get("identity")
    if ident:
        lines.append(
            f"Identity: dlib 128-d descriptor of each SR face vs its ground truth (same person if distance < {ident['threshold']}); "
            f"face box detected on the ground truth ({ident['no_face_detected']} without a detection used the whole image). "
            f"Verification: {ident['verification_pairs']} balanced same/different-identity pairs of SR faces; "
            f"the same pairs of HR faces score {_cell(ident['hr_verification_accuracy'], '{:.1%}')}.")
    if report.get("command"):
        lines += ["", f"Command: `{report['command']}`"]
    lines.append(f"Wall time: {report['wall_time_s']:.0f} s.")
    return "\n".join(lines) + "\n"


def write_reports(report: dict, output_dir: str) -> None:
    with open(os.path.join(output_dir, JSON_FILE), "w") as fh:
        json.dump(_json_safe(report), fh, indent=2)
    with open(os.path.join(output_dir, MARKDOWN_FILE), "w") as fh:
        fh.write(markdown(report))


def comparison_figure(columns: Sequence[tuple[str, Sequence[np.ndarray]]], path: str, hr_size: int) -> None:
    """PNG grid like the paper's Fig. 5: one titled column per (title, faces), one row per face."""
    if min(len(faces) for _, faces in columns) == 0:
        return
    image = visualize.grid([faces for _, faces in columns], max(hr_size, _MIN_TILE), titles=[t for t, _ in columns])
    files.write_png(path, image)
