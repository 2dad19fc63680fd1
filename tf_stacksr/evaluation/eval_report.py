"""Evaluation reports: results.json (machine-readable), results.md (shaped like the paper's
Tables 1-2: one row per method, FID beside PSNR/SSIM, plus identity; with framings, one row per
framing and method, with each method's gains over bicubic in that framing) and comparison.png
(like the paper's Fig. 5: LR input | bicubic | each method | ground truth, a few faces; one
comparison_<framing>.png per framing)."""

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
    ("sface_cosine", "SFace cosine ↑", "{:.3f}"),
    ("sface_same_person_rate", "same person (SFace) ↑", "{:.1%}"),
)
# The framing table: (key, header, format, how the value is derived from a row and its framing's bicubic row).
_FRAMING_COLUMNS = (
    ("psnr_y", "PSNR-Y (dB) ↑", "{:.2f}", None),
    ("psnr_y_gain", "gain PSNR-Y ↑", "{:+.2f}", lambda row, bic: row["psnr_y"] - bic["psnr_y"]),
    ("psnr_rgb", "PSNR-RGB (dB) ↑", "{:.2f}", None),
    ("psnr_rgb_gain", "gain PSNR-RGB ↑", "{:+.2f}", lambda row, bic: row["psnr_rgb"] - bic["psnr_rgb"]),
    ("ssim_y", "SSIM-Y ↑", "{:.4f}", None),
    ("ssim_rgb", "SSIM-RGB ↑", "{:.4f}", None),
    ("fid", "FID ↓", "{:.2f}", None),
    ("fid_ratio", "FID / bicubic ↓", "{:.3f}", lambda row, bic: row["fid"] / bic["fid"]),
    ("identity_distance", "ID distance ↓", "{:.3f}", None),
    ("same_person_rate", "same person ↑", "{:.1%}", None),
    ("verification_accuracy", "verification acc. ↑", "{:.1%}", None),
    ("sface_cosine", "SFace cosine ↑", "{:.3f}", None),
    ("sface_same_person_rate", "same person (SFace) ↑", "{:.1%}", None),
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


def framing_figure_file(framing: str) -> str:
    """comparison_<framing>.png: the comparison figure of one framing."""
    stem, ext = os.path.splitext(FIGURE_FILE)
    return f"{stem}_{framing}{ext}"


def _notes(report: dict, counts: bool = True) -> list[str]:
    """How the scores of one face set were measured (`counts`: with its detection counts)."""
    lines = [f"FID: SR set vs HR set, standard TF-Inception pool_3 features, n = {report['n_faces']} per set"
             + (" (below 2,048: biased upwards, compare only at equal n)." if report["n_faces"] < 2048 else "."),
             "PSNR/SSIM: per-image means, data range 255, no border crop; Y = BT.601 luma (as most SR papers), "
             "RGB = mean over channels; SSIM with an 11x11 Gaussian window (sigma 1.5)."]
    ident = report.get("identity")
    if ident:
        lines.append(
            f"Identity: dlib 128-d descriptor of each SR face vs its ground truth (same person if distance < {ident['threshold']}); "
            "face box detected on the ground truth (without a detection: the whole image"
            + (f", {ident['no_face_detected']} faces" if counts else "") + "). "
            f"Verification: {ident['verification_pairs']} balanced same/different-identity pairs of SR faces"
            + (f"; the same pairs of HR faces score {_cell(ident['hr_verification_accuracy'], '{:.1%}')}." if counts else "."))
        if "sface_threshold" in ident:
            lines.append(
                f"SFace (a recognizer no model here trains against): cosine of each SR face's embedding with its ground "
                f"truth's (same person if >= {ident['sface_threshold']}), ArcFace crops placed by YuNet on the ground truth "
                "(without a YuNet face: by dlib's eye centres" + (f", {ident['sface_no_yunet_face']} faces" if counts else "")
                + ").")
    return lines


def _footer(report: dict) -> list[str]:
    lines = ["", f"Command: `{report['command']}`"] if report.get("command") else []
    return lines + [f"Wall time: {report['wall_time_s']:.0f} s."]


def markdown(report: dict) -> str:
    """The results table and the facts needed to read it (data, n, protocol notes)."""
    if "framings" in report:
        return framing_markdown(report)
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
    lines += [""] + _notes(report) + _footer(report)
    return "\n".join(lines) + "\n"


def framing_rows(report: dict) -> list[dict]:
    """One row per (framing, method), with the gains and ratios over that framing's bicubic row."""
    rows = []
    for part in report["framings"]:
        bicubic = part["methods"][0]  # bicubic is always scored first
        for row in part["methods"]:
            derived = {k: derive(row, bicubic) if derive else row.get(k) for k, _, _, derive in _FRAMING_COLUMNS}
            rows.append({"framing": part["framing"], "method": row["method"], "n": row["n"], **derived})
    return rows


def framing_markdown(report: dict) -> str:
    """One table row per (framing, method), then each framing's faces and the protocol notes."""
    rows = framing_rows(report)
    present = [c for c in _FRAMING_COLUMNS if any(row.get(c[0]) is not None for row in rows)]
    lines = [
        f"## {report['lr_size']} to {report['hr_size']} (x{report['scale']}) by framing: {report['data']}",
        "",
        "Each framing crops the same faces again from their photos (`tf_stacksr.data.framing`); the LR input is the "
        "training degradation of each HR crop (antialiased bicubic downscale, uint8), so only the framing differs. "
        "Gains and FID ratios are over bicubic in the same framing.",
        "",
        "| framing | method | " + " | ".join(h for _, h, _, _ in present) + " | n |",
        "|---|---|" + "---:|" * (len(present) + 1),
    ]
    for row in rows:
        lines.append(f"| {row['framing']} | {row['method']} | "
                     + " | ".join(_cell(row.get(k), f) for k, _, f, _ in present) + f" | {row['n']} |")
    lines.append("")
    for part in report["framings"]:
        ident = part.get("identity")
        found = (f"; HR verification {_cell(ident['hr_verification_accuracy'], '{:.1%}')}, no dlib face on "
                 f"{ident['no_face_detected']} ground truths, no YuNet face on {ident['sface_no_yunet_face']}") if ident else ""
        lines.append(f"- {part['framing']}: n = {part['n_faces']} ({part['source']}; {part['n_skipped']} unreadable "
                     f"skipped{found}).")
    lines += [""] + _notes(report["framings"][0], counts=False) + _footer(report)
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
