"""`tf-stacksr enhance` over files: every photo of a file or folder, enhanced into an output folder.

Batch behaviour: every file is independent. Unreadable files are skipped and counted by reason
(only regular files are read, up to `--max-file-mb`: `photos.read_photo_file`), outputs are
written atomically (temp file + rename), existing outputs are kept unless `overwrite` (so an
interrupted run resumes), and output names are sanitised and confined to the output folder
whatever the input names contain. What happens to one photo is `enhance_lib.enhance_photo`.

Inputs and outputs never meet: an output folder that is the input folder (or a single input
file's folder) is refused, one inside the input folder is left out of the search for inputs,
and an output that would land on an input file is skipped (`output_is_an_input`).
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
OUTPUT_IS_INPUT = "output_is_an_input"
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


def read_photo(path: str, options: EnhanceOptions) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """(RGB uint8 upright, RGBA with the photo's own colours or None, conversions) of an image
    file. The RGB of a photo with alpha is its composite on white (for the detector and the
    model). Raises photos.Skip."""
    data = photos.read_photo_file(path, options.max_file_mb * 2**20, f"--max-file-mb={options.max_file_mb}")
    pixels, _, conversions = photos.decode_photo(data, min_side=8, max_side=options.max_side, keep_alpha=True)
    conversions = [c for c in conversions if c != photos.ALPHA]
    if pixels.shape[2] == 4:
        return photos.flatten_on_white(pixels), pixels, conversions
    return pixels, None, conversions


def list_inputs(path: str, exclude: Iterable[str] = ()) -> list[tuple[str, str]]:
    """(file, name relative to the input) of an image file or of every image under a folder.

    Hidden files and folders (.DS_Store, macOS ._ resource forks, .git) are not inputs, nor is
    anything under the folders in `exclude`. A single --input that is not a folder is an input
    whatever it is (reading skips a fifo or a device with its reason).
    """
    if os.path.isdir(path):
        return [(full, os.path.relpath(full, path)) for full in files.list_images(path, exclude=exclude)]
    if os.path.lexists(path):
        return [(path, os.path.basename(path))]
    raise FileNotFoundError(f"--input={path}: no such file or folder")


def check_folders(input_path: str, out_dir: str) -> str | None:
    """Refuse an output that would replace inputs (ValueError naming the flags); the output folder
    to leave out of the search for inputs when it lies inside the input folder, else None."""
    out_real = os.path.realpath(out_dir)
    if os.path.lexists(out_dir) and not os.path.isdir(out_dir):
        same = os.path.exists(input_path) and os.path.realpath(input_path) == out_real
        raise ValueError(f"--output={out_dir}: expected a folder, found a file"
                         + (" (the --input photo itself)" if same else ""))
    if os.path.isdir(input_path):
        in_real = os.path.realpath(input_path)
        if out_real == in_real:
            raise ValueError(f"--output={out_dir} is the input folder (--input={input_path}): outputs would replace"
                             " the inputs or be taken for inputs next time; choose another output folder")
        if os.path.commonpath([in_real, out_real]) == in_real:
            return out_real
        return None
    if out_real == os.path.realpath(os.path.dirname(os.path.abspath(input_path))):
        raise ValueError(f"--output={out_dir} is the folder of --input={input_path}: the output would replace"
                         " the input; choose another output folder")
    return None


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


def plan_outputs(inputs: Iterable[tuple[str, str]], out_dir: str) -> list[tuple[str, str | None, tuple[str, str] | None]]:
    """(input file, output .png path or None, (skip reason, detail) or None) for each input: names
    unique, inside `out_dir` and never an input file."""
    inputs = list(inputs)
    root = os.path.realpath(out_dir)
    input_files = {os.path.realpath(path) for path, _ in inputs}
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
        if os.path.commonpath([root, os.path.realpath(target)]) != root:
            plan.append((path, None, (UNSAFE_NAME, f"its output would land outside {out_dir}")))
        elif os.path.realpath(target) in input_files:
            plan.append((path, None, (OUTPUT_IS_INPUT, f"its output {candidate}.png would replace that input file")))
        else:
            plan.append((path, target, None))
    return plan


def attach_alpha(image: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    if alpha is None:
        return image
    alpha = cv2.resize(alpha, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
    return np.dstack([image, alpha])


def enhance_files(input_path: str, out_dir: str, upscaler, options: EnhanceOptions, *,
                  progress: bool = True, log: Callable[[str], None] = print) -> Summary:
    """Enhance one photo or every photo under a folder into `out_dir`; returns the counts.

    Raises ValueError (naming --input / --output) when `out_dir` would replace the inputs.
    """
    from tqdm import tqdm

    excluded = check_folders(input_path, out_dir)
    if excluded:
        log(f"enhance: --output={out_dir} is inside --input={input_path}: it is left out of the search for inputs")
    plan = plan_outputs(list_inputs(input_path, exclude=[excluded] if excluded else []), out_dir)
    aligner = None if options.aligned else align.FaceAligner(options.detector)
    summary = Summary(files=len(plan))
    bar = tqdm(plan, unit="photo", disable=not progress, desc="enhance")
    say = tqdm.write if progress else log

    def skip(path: str, reason: str, detail: str) -> None:
        summary.skipped[reason] += 1
        summary.skipped_files.append((path, reason))
        say(f"skipped {path}: {reason}" + (f" ({detail})" if detail else ""))

    for path, target, problem in bar:
        if problem:
            skip(path, *problem)
            continue
        if os.path.exists(target) and not options.overwrite:
            summary.existing += 1
            continue
        try:
            rgb, rgba, conversions = read_photo(path, options)
            result = enhance_photo(rgb, upscaler, options, aligner, canvas_rgb=None if rgba is None else rgba[..., :3])
            files.write_png(target, attach_alpha(result.image, None if rgba is None else rgba[..., 3]))
            if options.save_faces:
                for k, face in enumerate(result.faces):
                    files.write_png(f"{os.path.splitext(target)[0]}_face{k}.png", face)
        except photos.Skip as err:
            skip(path, err.reason, err.detail)
            continue
        except (OSError, ValueError, MemoryError, cv2.error) as err:
            skip(path, FAILED, f"{type(err).__name__}: {photos.describe(err)}")
            continue
        summary.written += 1
        summary.faces += len(result.faces)
        summary.without_faces += not result.faces
        notes = conversions + result.notes
        if notes:
            say(f"{path}: " + "; ".join(notes))
    return summary
