"""`tf-stacksr enhance` over files: every photo of a file or folder, enhanced into an output folder.

Batch behaviour: every file is independent. Unreadable files are skipped and counted by reason,
outputs are written atomically (temp file + rename), existing outputs are kept unless
`overwrite` (so an interrupted run resumes), and output names are sanitised and confined to
the output folder whatever the input names contain. What happens to one photo is
`enhance_lib.enhance_photo`.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import re
from typing import Callable, Iterable

import cv2
import numpy as np

from tf_stacksr import files
from tf_stacksr.apps.enhance_lib import EnhanceOptions, enhance_photo
from tf_stacksr.data import align, photos

# Reasons a file is skipped besides `photos.Skip` reasons.
UNSAFE_NAME = "unsafe_output_path"
FAILED = "failed"


@dataclasses.dataclass
class Summary:
    files: int = 0
    written: int = 0
    faces: int = 0
    without_faces: int = 0
    existing: int = 0
    skipped: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    skipped_files: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    def line(self) -> str:
        skipped = sum(self.skipped.values())
        reasons = ", ".join(f"{k}: {v}" for k, v in sorted(self.skipped.items()))
        return (f"{self.files} files: {self.written} written, {self.faces} faces"
                f" ({self.without_faces} photos without faces), {self.existing} already done,"
                f" {skipped} skipped" + (f" ({reasons})" if reasons else ""))


def read_photo(path: str, max_side: int) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """(RGB uint8 upright, RGBA with the photo's own colours or None, conversions) of an image
    file. The RGB of a photo with alpha is its composite on white (for the detector and the
    model). Raises photos.Skip."""
    with open(path, "rb") as fh:
        data = fh.read()
    pixels, _, conversions = photos.decode_photo(data, min_side=8, max_side=max_side, keep_alpha=True)
    conversions = [c for c in conversions if c != photos.ALPHA]
    if pixels.shape[2] == 4:
        return photos.flatten_on_white(pixels), pixels, conversions
    return pixels, None, conversions


def list_inputs(path: str) -> list[tuple[str, str]]:
    """(file, name relative to the input) of an image file or of every image under a folder.

    Hidden files and folders (.DS_Store, macOS ._ resource forks, .git) are not inputs.
    """
    if os.path.isfile(path):
        return [(path, os.path.basename(path))]
    if not os.path.isdir(path):
        raise FileNotFoundError(f"--input={path}: no such file or folder")
    return [(full, os.path.relpath(full, path)) for full in files.list_images(path)]


_UNSAFE_CHARS = re.compile(r'[\x00-\x1f\x7f<>:"|?*\\]')


def safe_relative_name(relative: str) -> str:
    """`relative` as a harmless relative path: no '..', no absolute part, no odd characters."""
    parts = []
    for part in re.split(r"[\\/]+", relative):
        part = _UNSAFE_CHARS.sub("_", part).strip(" ")
        if part in ("", ".", ".."):
            continue
        parts.append("_" + part[1:] if part.startswith(".") else part)
    return os.path.join(*parts) if parts else "unnamed"


def plan_outputs(inputs: Iterable[tuple[str, str]], out_dir: str) -> list[tuple[str, str | None]]:
    """(input file, output .png path or None if unsafe) for each input, names unique and inside `out_dir`."""
    root = os.path.realpath(out_dir)
    taken: set[str] = set()
    plan = []
    for path, relative in inputs:
        stem = os.path.splitext(safe_relative_name(relative))[0]
        candidate, n = stem, 1
        while candidate.lower() in taken:
            n += 1
            candidate = f"{stem}_{n}"
        taken.add(candidate.lower())
        target = os.path.join(root, candidate + ".png")
        inside = os.path.commonpath([root, os.path.realpath(target)]) == root
        plan.append((path, target if inside else None))
    return plan


def attach_alpha(image: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    if alpha is None:
        return image
    alpha = cv2.resize(alpha, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
    return np.dstack([image, alpha])


def enhance_files(input_path: str, out_dir: str, upscaler, options: EnhanceOptions, *,
                  progress: bool = True, log: Callable[[str], None] = print) -> Summary:
    """Enhance one photo or every photo under a folder into `out_dir`; returns the counts."""
    from tqdm import tqdm

    plan = plan_outputs(list_inputs(input_path), out_dir)
    aligner = None if options.aligned else align.FaceAligner(options.detector)
    summary = Summary(files=len(plan))
    bar = tqdm(plan, unit="photo", disable=not progress, desc="enhance")
    say = tqdm.write if progress else log

    def skip(path: str, reason: str, detail: str) -> None:
        summary.skipped[reason] += 1
        summary.skipped_files.append((path, reason))
        say(f"skipped {path}: {reason}" + (f" ({detail})" if detail else ""))

    for path, target in bar:
        if target is None:
            skip(path, UNSAFE_NAME, f"its output would land outside {out_dir}")
            continue
        if os.path.exists(target) and not options.overwrite:
            summary.existing += 1
            continue
        try:
            rgb, rgba, conversions = read_photo(path, options.max_side)
            result = enhance_photo(rgb, upscaler, options, aligner, canvas_rgb=None if rgba is None else rgba[..., :3])
            files.write_png(target, attach_alpha(result.image, None if rgba is None else rgba[..., 3]))
            if options.save_faces:
                for k, face in enumerate(result.faces):
                    files.write_png(f"{os.path.splitext(target)[0]}_face{k}.png", face)
        except photos.Skip as err:
            skip(path, err.reason, err.detail)
            continue
        except (OSError, ValueError, MemoryError, cv2.error) as err:
            skip(path, FAILED, f"{type(err).__name__}: {err}")
            continue
        summary.written += 1
        summary.faces += len(result.faces)
        summary.without_faces += not result.faces
        notes = conversions + result.notes
        if notes:
            say(f"{path}: " + "; ".join(notes))
    return summary
