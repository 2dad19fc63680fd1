"""`tf-stacksr enhance` over files: every photo of a file or folder, enhanced into an output folder.

Batch behaviour: every file is independent. Unreadable files are skipped and counted by reason
(only regular files are read, up to `--max-file-mb`: `photos.read_photo_file`), outputs are
written atomically (temp file + rename), existing outputs are kept unless `overwrite` (so an
interrupted run resumes), and output names are sanitised and confined to the output folder
whatever the input names contain. What happens to one photo is `enhance_lib.enhance_photo`.

Output names. Each is a function of its own input's path only, never of which other files
exist, so a rerun after adding files finds the same names:
  OUT/<path under the input>              in the input's own format (`--format=same`, the default:
                                          a JPEG stays a JPEG at quality 95 without chroma
                                          subsampling, a PNG stays a PNG; WebP, BMP, TIFF likewise)
  OUT/<path under the input>.png | .jpg   when written in another format: `--format=png|jpeg`
                                          (`photo.jpg.png`), a GIF (`anim.gif.png`: 256 colours
                                          would undo the enhancement), or an image with alpha
                                          where the format has none (JPEG, BMP: written as PNG)
  OUT/<path under the input>.face<k>.png  with `save_faces`: the k-th super-resolved aligned face
                                          (largest first), always PNG
Two inputs that would still share an output (`a.jpg` with `--format=png` beside an input named
`a.jpg.png`; names that are equal once sanitised) are both skipped as `output_name_clash`,
each naming the other; nothing is ever silently "already done" for another input's output.

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
from PIL import features

from tf_stacksr import files
from tf_stacksr.apps.enhance_lib import EnhanceOptions, enhance_photo, make_aligner
from tf_stacksr.data import photos

# Reasons a file is skipped besides `photos.Skip` reasons.
UNSAFE_NAME = "unsafe_output_path"
NAME_CLASH = "output_name_clash"
OUTPUT_IS_INPUT = "output_is_an_input"
FAILED = "failed"


@dataclasses.dataclass(frozen=True)
class ImageFormat:
    pillow: str  # Pillow's name for it
    extensions: tuple[str, ...]  # the first is the one outputs are given
    alpha: bool  # stores an alpha channel
    params: tuple[tuple[str, object], ...] = ()  # Pillow save options


# Formats outputs are written in. --format=same picks the one of the input's extension; other
# inputs (GIF) and formats this Pillow cannot write are written as PNG.
FORMATS = {
    "png": ImageFormat("PNG", (".png",), True),
    "jpeg": ImageFormat("JPEG", (".jpg", ".jpeg"), False, (("quality", 95), ("subsampling", 0))),
    "webp": ImageFormat("WEBP", (".webp",), True, (("quality", 95), ("method", 4))),
    "bmp": ImageFormat("BMP", (".bmp",), False),
    "tiff": ImageFormat("TIFF", (".tif", ".tiff"), True,
                        (("compression", "tiff_lzw"),) if features.check("libtiff") else ()),
}
if not features.check("webp"):
    del FORMATS["webp"]


@dataclasses.dataclass
class Summary:
    files: int = 0
    written: int = 0
    faces: int = 0
    without_faces: int = 0
    existing: int = 0
    skipped: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    skipped_files: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    models: collections.Counter = dataclasses.field(default_factory=collections.Counter)  # faces by model (or bicubic)

    def line(self) -> str:
        skipped = sum(self.skipped.values())
        reasons = ", ".join(f"{k}: {v}" for k, v in sorted(self.skipped.items()))
        by_model = ", ".join(f"{k}: {v}" for k, v in sorted(self.models.items()))
        return (f"{self.files} files: {self.written} written, {self.faces} faces" + (f" ({by_model})" if by_model else "")
                + f", {self.without_faces} photos without faces, {self.existing} already done, {skipped} skipped"
                + (f" ({reasons})" if reasons else ""))


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


def output_format(name: str, requested: str) -> str:
    """The FORMATS key an input named `name` is written in for --format=`requested`."""
    if requested != "same":
        return requested
    ext = os.path.splitext(name)[1].lower()
    return next((key for key, fmt in FORMATS.items() if ext in fmt.extensions), "png")


def output_name(name: str, image_format: str) -> str:
    """`name` when it already ends as `image_format` files do, else `name` + its extension."""
    extensions = FORMATS[image_format].extensions
    return name if os.path.splitext(name)[1].lower() in extensions else name + extensions[0]


@dataclasses.dataclass
class Planned:
    source: str  # the input file
    name: str  # its sanitised path relative to the output folder, extension kept
    image_format: str  # FORMATS key it is written in (PNG instead when it has alpha and this has none)
    path: str | None = None  # output file; None when skipped
    alpha_path: str | None = None  # output file if written as PNG because of alpha
    problem: tuple[str, str] | None = None  # (skip reason, detail)

    def done(self) -> bool:
        return any(p is not None and os.path.exists(p) for p in (self.path, self.alpha_path))

    def face_path(self, k: int) -> str:
        """Where the k-th face goes: beside the output, named after the input (`photo.jpg.face0.png`)."""
        return os.path.join(os.path.dirname(self.path), f"{os.path.basename(self.name)}.face{k}.png")


def plan_outputs(inputs: Iterable[tuple[str, str]], out_dir: str, requested_format: str = "same",
                 save_faces: bool = False) -> list[Planned]:
    """The output of each input (see the module doc): names inside `out_dir`, never an input's,
    never shared; a `problem` instead where that cannot be."""
    inputs = list(inputs)
    root = os.path.realpath(out_dir)
    input_files = {os.path.realpath(path) for path, _ in inputs}
    plan = []
    claims: dict[str, list[int]] = collections.defaultdict(list)  # output name -> inputs that would write it
    for i, (path, relative) in enumerate(inputs):
        name = safe_relative_name(relative)
        item = Planned(path, name, output_format(name, requested_format))
        names = [output_name(name, item.image_format)]
        if not FORMATS[item.image_format].alpha:
            names.append(output_name(name, "png"))
        targets = [os.path.join(root, n) for n in names]
        if any(os.path.commonpath([root, os.path.realpath(t)]) != root for t in targets):
            item.problem = (UNSAFE_NAME, f"its output would land outside {out_dir}")
        elif any(os.path.realpath(t) in input_files for t in targets):
            item.problem = (OUTPUT_IS_INPUT, f"its output {names[0]} would replace that input file")
        else:
            item.path = targets[0]
            item.alpha_path = targets[1] if len(targets) > 1 else None
            for n in dict.fromkeys(names):
                claims[n].append(i)
        plan.append(item)
    face_of = re.compile(r"^(.*)\.face\d+\.png$")
    by_name = {item.name: i for i, item in enumerate(plan) if item.problem is None}
    for claimed, owners in list(claims.items()):
        match = face_of.match(claimed) if save_faces else None
        if match and match.group(1) in by_name and by_name[match.group(1)] not in owners:
            owners.append(by_name[match.group(1)])
        if len(owners) > 1:
            for i in owners:
                others = ", ".join(plan[j].source for j in owners if j != i)
                plan[i].problem = (NAME_CLASH, f"its output {claimed} is also the output of {others}")
                plan[i].path = plan[i].alpha_path = None
    return plan


def attach_alpha(image: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    if alpha is None:
        return image
    alpha = cv2.resize(alpha, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
    return np.dstack([image, alpha])


def write_output(item: Planned, image: np.ndarray) -> str:
    """Write `image` as `item` says (PNG at `alpha_path` when it has alpha and the format has none)."""
    fmt, path = FORMATS[item.image_format], item.path
    if image.ndim == 3 and image.shape[2] == 4 and not fmt.alpha:
        fmt, path = FORMATS["png"], item.alpha_path
    files.write_image(path, image, fmt.pillow, **dict(fmt.params))
    return path


def enhance_files(input_path: str, out_dir: str, upscaler, options: EnhanceOptions, *,
                  progress: bool = True, log: Callable[[str], None] = print, aligner=None) -> Summary:
    """Enhance one photo or every photo under a folder into `out_dir`; returns the counts.

    `aligner`: the face detector to use (default: `make_aligner(options.detector)`, loaded when
    the first photo needs it: several seconds for dlib). Raises ValueError (naming --input /
    --output) when `out_dir` would replace the inputs.
    """
    from tqdm import tqdm

    excluded = check_folders(input_path, out_dir)
    if excluded:
        log(f"enhance: --output={out_dir} is inside --input={input_path}: it is left out of the search for inputs")
    inputs = list_inputs(input_path, exclude=[excluded] if excluded else [])
    input_files = {os.path.realpath(path) for path, _ in inputs}
    plan = plan_outputs(inputs, out_dir, options.output_format, options.save_faces)
    summary = Summary(files=len(plan))
    bar = tqdm(plan, unit="photo", disable=not progress, desc="enhance")
    say = tqdm.write if progress else log

    def skip(path: str, reason: str, detail: str) -> None:
        summary.skipped[reason] += 1
        summary.skipped_files.append((path, reason))
        say(f"skipped {path}: {reason}" + (f" ({detail})" if detail else ""))

    for item in bar:
        path = item.source
        if item.problem:
            skip(path, *item.problem)
            continue
        if item.done() and not options.overwrite:
            summary.existing += 1
            continue
        try:
            rgb, rgba, conversions = read_photo(path, options)
            if aligner is None and not options.aligned:
                aligner = make_aligner(options.detector)
            result = enhance_photo(rgb, upscaler, options, aligner, canvas_rgb=None if rgba is None else rgba[..., :3])
            write_output(item, attach_alpha(result.image, None if rgba is None else rgba[..., 3]))
            if options.save_faces:
                for k, face in enumerate(result.faces):
                    if os.path.realpath(item.face_path(k)) in input_files:
                        result.notes.append(f"face {k} not written: {item.face_path(k)} is an input")
                        continue
                    files.write_png(item.face_path(k), face)
        except photos.Skip as err:
            skip(path, err.reason, err.detail)
            continue
        except (OSError, ValueError, MemoryError, cv2.error) as err:
            skip(path, FAILED, f"{type(err).__name__}: {photos.describe(err)}")
            continue
        summary.written += 1
        summary.faces += len(result.faces)
        summary.models.update(result.models)
        summary.without_faces += not result.faces
        notes = conversions + result.notes
        if notes:
            say(f"{path}: " + "; ".join(notes))
    return summary
