"""Photos -> aligned faces in sharded TFRecords, with a manifest of what was written and skipped.

Layout of an output folder:
  prepare_options.json      the options and a digest of the source list (a resumed run must match)
  <split>-NNNNN.tfrecord    faces from source items [NNNNN * shard_size, (NNNNN + 1) * shard_size)
  shard-NNNNN.json          that shard's counts; written last, so its presence means "finished"
  manifest.json             totals, per-split shard lists and every skipped file with its reason;
                            written when all shards are finished (readers need it)
  png/<split>/...           optional dump of the aligned faces, for inspection

Shards follow the source order (not the split), so a source can be streamed once, in order,
whatever the split; each shard file is renamed into place only when complete. Re-running the
same command skips finished shards, so an interrupted job loses at most the shards in flight
and never duplicates a face.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import hashlib
import itertools
import json
import multiprocessing
import os
import time
from typing import Any, Sequence

import cv2
import numpy as np
from tqdm import tqdm

from tf_stacksr import files
from tf_stacksr.config import option
from tf_stacksr.data import align, photos
from tf_stacksr.data.sources import (
    LABEL_MODES,
    SPLIT_MODES,
    Item,
    assign_splits,
    open_source,
)

# `records` (TensorFlow) is imported only where shards are written, in the main process: the
# worker processes are spawned fresh (forking a process that has started TensorFlow's threads
# can deadlock the children) and start in about a second when they do not load TensorFlow.

# Skip reasons decided after decoding (decoding ones are in `photos`).
NO_FACE = "no_face"
FACE_TOO_SMALL = "face_too_small"
ERROR = "error"
# Not a skip: the photo had several faces; the largest (or every one, with all_faces) was kept.
MULTIPLE_FACES = "multiple_faces"
MANIFEST = "manifest.json"
OPTIONS_FILE = "prepare_options.json"


@dataclasses.dataclass(frozen=True)
class PrepareOptions:
    """What a preparation produces; resuming requires the same values (except `workers`)."""

    size: int = option(128, "Side of the aligned square crop in pixels (the HR size, e.g. 64, 128, 256).")
    face_scale: float = option(0.7, "Fraction of the crop side the face box spans (paper: about 0.7).")
    detector: str = option("hog", "Face detector: hog (fast) or cnn (dlib mmod: also turned faces, about 100x slower on a"
                                  " CPU; needs faces of ~80 px after --upsample, so at the same --upsample it finds fewer"
                                  " small faces than hog).")
    upsample: int = option(-1, "dlib upsampling passes before detection; -1 = 1 for photos up to 800 px, else 0.")
    all_faces: bool = option(False, "Write every face of a photo instead of only the largest.")
    min_side: int = option(32, "Skip photos whose short side is below this (too_small).")
    max_side: int = option(4096, "Downscale photos whose long side exceeds this before detection (downscaled_large).")
    max_pixels: int = option(150_000_000, "Skip photos with more pixels than this without decoding them (too_large).")
    max_file_mb: int = option(photos.MAX_FILE_MB, "Skip files larger than this many MB (2^20 bytes) without reading them"
                              " (too_large); devices, fifos and sockets are never read (not_a_regular_file).")
    max_upscale: float = option(2.0, "Skip faces that would need more than this enlargement to fill the crop (face_too_small).")
    image_format: str = option("png", "Encoding of the faces in the shards: png (lossless) or jpeg (quality 95).")
    shard_size: int = option(500, "Source photos per shard (the unit of resume).")
    split: str = option("auto", "auto | folder (train/ test/ subfolders) | identity (no person in two splits) | random | none.")
    test_fraction: float = option(0.1, "Fraction of photos in the test split for identity/random splits.")
    seed: int = option(0, "Seed of the identity/random split.")
    labels: str = option("auto", "auto | file (identity.txt-style) | folder (LFW: person folders) | none.")
    identity_file: str = option("", "'<file> <identity>' lines; default: identity.txt or identity_CelebA.txt in --input.")
    tfds_data_dir: str = option("", "TFDS data_dir for --input=tfds:NAME (the dataset must already be prepared there).")
    dump_png: bool = option(False, "Also write every aligned face as PNG under OUTPUT/png/<split>/ for inspection.")
    workers: int = option(0, "Worker processes; 0 = every core.")

    def __post_init__(self) -> None:
        def fail(flag: str, expected: str) -> None:
            raise ValueError(f"--{flag}={getattr(self, flag)!r}: expected {expected}")

        if self.size < 16:
            fail("size", "a crop side >= 16 pixels")
        align.check_face_scale(self.face_scale)
        if self.detector not in align.DETECTORS:
            fail("detector", " or ".join(align.DETECTORS))
        if self.image_format not in ("png", "jpeg"):
            fail("image_format", "png or jpeg")
        if self.split not in SPLIT_MODES:
            fail("split", " or ".join(SPLIT_MODES))
        if self.labels not in LABEL_MODES:
            fail("labels", " or ".join(LABEL_MODES))
        if not 0 <= self.test_fraction < 1:
            fail("test_fraction", "a fraction in [0, 1)")
        for name in ("shard_size", "min_side", "max_pixels", "max_file_mb"):
            if getattr(self, name) < 1:
                fail(name, "an integer >= 1")
        if self.max_side < self.size:
            fail("max_side", f"at least --size={self.size}")
        if self.workers < 0:
            fail("workers", "0 (every core) or a positive process count")
        if self.max_upscale <= 0:
            fail("max_upscale", "a positive enlargement factor")

    def resume_key(self) -> dict[str, Any]:
        key = {k: v for k, v in dataclasses.asdict(self).items() if k not in ("workers", "dump_png")}
        if self.max_file_mb == photos.MAX_FILE_MB:  # folders prepared before this option existed still resume
            del key["max_file_mb"]
        return key


# ---- per-photo work (runs in the worker processes) -------------------------------------------
_ALIGNER: align.FaceAligner | None = None


def _init_worker(options: PrepareOptions) -> None:
    global _ALIGNER
    cv2.setNumThreads(1)
    _ALIGNER = align.FaceAligner(options.detector, None if options.upsample < 0 else options.upsample)


def process_photo(task: tuple[int, Any, PrepareOptions]) -> dict[str, Any]:
    """Decode, detect, align one photo: {"index", "faces": [...], "skip", "detail", "converted"}."""
    index, payload, options = task
    out: dict[str, Any] = {"index": index, "faces": [], "skip": None, "detail": "", "converted": []}
    try:
        data = payload
        if isinstance(payload, str):
            data = photos.read_photo_file(payload, options.max_file_mb * 2**20, f"--max_file_mb={options.max_file_mb}")
        image, scale, out["converted"] = photos.decode_photo(
            data, min_side=options.min_side, max_side=options.max_side, max_pixels=options.max_pixels)
        if _ALIGNER is None:
            _init_worker(options)
        faces = _ALIGNER.detect(image)
        if not faces:
            raise photos.Skip(NO_FACE)
        if len(faces) > 1:
            out["converted"].append(MULTIPLE_FACES)
        for face in faces if options.all_faces else faces[:1]:
            matrix = align.alignment_matrix(face.landmarks, options.size, options.face_scale)
            if np.hypot(matrix[0, 0], matrix[1, 0]) > options.max_upscale:
                continue
            crop, matrix = align.align_face(image, face.landmarks, options.size, options.face_scale)
            ext, params = (".png", []) if options.image_format == "png" else (".jpg", [cv2.IMWRITE_JPEG_QUALITY, 95])
            ok, encoded = cv2.imencode(ext, cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), params)
            if not ok:
                raise RuntimeError(f"could not encode the aligned face as {options.image_format}")
            # The matrix is stored for the upright full-resolution original (the decoder may
            # have shrunk the image by `scale`); cv2-style centre convention as in align_face.
            to_work = np.array([[scale, 0, (scale - 1) / 2], [0, scale, (scale - 1) / 2], [0, 0, 1]])
            out["faces"].append({
                "image": encoded.tobytes(),
                "landmarks": align.transform_points(matrix, face.landmarks).astype(np.float32),
                "matrix": (np.vstack([matrix, [0, 0, 1]]) @ to_work)[:2],
                "score": face.score,
            })
        if not out["faces"]:
            raise photos.Skip(FACE_TOO_SMALL, f"needs more than {options.max_upscale}x enlargement")
    except photos.Skip as skip:
        out.update(faces=[], skip=skip.reason, detail=skip.detail)
    except Exception as err:  # never let one photo stop the job; it is listed with its error
        out.update(faces=[], skip=ERROR, detail=f"{type(err).__name__}: {photos.describe(err, 300)}"[:300])
    return out


# ---- the job ---------------------------------------------------------------------------------
def _digest(items: Sequence[Item]) -> str:
    h = hashlib.sha1()
    for it in items:
        h.update(f"{it.key}\t{it.identity}\t{it.split}\n".encode("utf-8"))
    return h.hexdigest()


def _check_resume(output: str, record: dict[str, Any]) -> None:
    path = os.path.join(output, OPTIONS_FILE)
    if os.path.isfile(path):
        with open(path) as fh:
            previous = json.load(fh)
        changed = sorted(k for k in set(previous) | set(record) if previous.get(k) != record.get(k))
        if changed:
            raise ValueError(
                f"--output={output!r} holds a preparation made with different {', '.join(changed)} "
                f"(see {path}); use a new --output folder or the same options and input")
    else:
        files.write_json(path, record)


def _shard_stats_path(output: str, shard: int) -> str:
    return os.path.join(output, f"shard-{shard:05d}.json")


def _finish_shard(output: str, shard: int, items: Sequence[Item], results: Sequence[dict[str, Any]], options: PrepareOptions) -> None:
    """Write one shard's TFRecords (one per split present), optional PNGs, then its stats file."""
    from tf_stacksr.data import records

    by_split: dict[str, list[bytes]] = {it.split: [] for it in items}
    stats: dict[str, Any] = {"sources": len(items), "written": {}, "files": {}, "skipped": {}, "converted": {}, "identities": {}}
    for item, result in zip(items, results):
        for kind in result["converted"]:
            stats["converted"].setdefault(kind, []).append(item.key)
        if result["skip"]:
            stats["skipped"].setdefault(result["skip"], []).append(f"{item.key}: {result['detail']}" if result["detail"] else item.key)
            continue
        for number, face in enumerate(result["faces"]):
            by_split[item.split].append(records.encode_example(
                face["image"], source=item.key, identity=item.identity, landmarks=face["landmarks"],
                matrix=face["matrix"], score=face["score"], size=options.size))
            if item.identity:
                stats["identities"].setdefault(item.split, []).append(item.identity)
            if options.dump_png:
                name = item.key.replace(os.sep, "__").rsplit(".", 1)[0] + (f"_{number}" if number else "")
                folder = os.path.join(output, "png", item.split)
                os.makedirs(folder, exist_ok=True)
                pixels = cv2.imdecode(np.frombuffer(face["image"], np.uint8), cv2.IMREAD_COLOR)
                cv2.imwrite(os.path.join(folder, name + ".png"), pixels)
    for split, examples in by_split.items():
        name = f"{split}-{shard:05d}.tfrecord"
        stats["written"][split] = records.write_shard(os.path.join(output, name), examples)
        stats["files"][split] = name
    stats["identities"] = {s: sorted(set(v)) for s, v in stats["identities"].items()}
    files.write_json(_shard_stats_path(output, shard), stats)


def _write_manifest(output: str, spec: str, source, items: Sequence[Item], split_mode: str, options: PrepareOptions, seconds: float) -> dict[str, Any]:
    n_shards = -(-len(items) // options.shard_size)
    splits: dict[str, Any] = {}
    skipped: dict[str, list[str]] = {}
    converted: dict[str, list[str]] = {}
    identities: dict[str, set[str]] = collections.defaultdict(set)
    for shard in range(n_shards):
        with open(_shard_stats_path(output, shard)) as fh:
            stats = json.load(fh)
        for split, count in stats["written"].items():
            entry = splits.setdefault(split, {"examples": 0, "shards": []})
            entry["examples"] += count
            entry["shards"].append({"file": stats["files"][split], "examples": count})
        for reason, keys in stats["skipped"].items():
            skipped.setdefault(reason, []).extend(keys)
        for kind, keys in stats["converted"].items():
            converted.setdefault(kind, []).extend(keys)
        for split, names in stats["identities"].items():
            identities[split].update(names)
    for split, entry in splits.items():
        entry["identities"] = len(identities[split])
    shared = set.intersection(*identities.values()) if len(identities) > 1 else set()
    manifest = {
        "format": "tf-stacksr aligned faces v1",
        "input": spec,
        "source": {"kind": source.kind, "labels": source.labels, "photos": len(items)},
        "split_mode": split_mode,
        "identities_in_several_splits": len(shared),
        "options": dataclasses.asdict(options),
        "counts": {
            "photos": len(items),
            "faces_written": sum(s["examples"] for s in splits.values()),
            "photos_skipped": sum(len(v) for v in skipped.values()),
            "skipped": {k: len(v) for k, v in sorted(skipped.items())},
            "converted": {k: len(v) for k, v in sorted(converted.items())},
        },
        "splits": splits,
        "skipped_files": {k: v for k, v in sorted(skipped.items())},
        "converted_files": {k: v for k, v in sorted(converted.items())},
        "wall_seconds_last_run": round(seconds, 1),
    }
    files.write_json(os.path.join(output, MANIFEST), manifest)
    return manifest


def prepare(spec: str, output: str, options: PrepareOptions = PrepareOptions(), *, progress: bool = True) -> dict[str, Any]:
    """Prepare `spec` (folder or `tfds:<name>`) into `output`; returns the manifest.

    Resumable: finished shards (those with a `shard-NNNNN.json`) are kept as they are.
    """
    start = time.time()
    source = open_source(spec, options)
    items, split_mode = assign_splits(source.items, options.split, options.test_fraction, options.seed)
    os.makedirs(output, exist_ok=True)
    _check_resume(output, {"input": os.path.abspath(spec) if source.kind == "folder" else spec,
                           "options": options.resume_key(), "sources": _digest(items), "photos": len(items)})
    for name in os.listdir(output):  # leftovers of an interrupted run: never complete, never read
        if ".tmp-" in name:
            os.remove(os.path.join(output, name))
    n_shards = -(-len(items) // options.shard_size)
    pending = [s for s in range(n_shards) if not os.path.isfile(_shard_stats_path(output, s))]
    indices = [i for s in pending for i in range(s * options.shard_size, min(len(items), (s + 1) * options.shard_size))]
    payloads = source.payloads(indices)
    workers = options.workers or os.cpu_count() or 1
    bar = tqdm(total=len(indices), desc=f"aligning {os.path.basename(os.path.normpath(spec))}", unit="photo", disable=not progress)
    with contextlib.ExitStack() as stack:
        if workers == 1:
            _init_worker(options)
            run = map
        else:
            pool = stack.enter_context(multiprocessing.get_context("spawn").Pool(workers, initializer=_init_worker, initargs=(options,)))
            run = functools.partial(pool.imap, chunksize=4)
        for shard in pending:
            # One shard in flight at a time: a stream source (TFDS) is never read far ahead.
            lo, hi = shard * options.shard_size, min(len(items), (shard + 1) * options.shard_size)
            tasks = [(i, payload, options) for i, payload in itertools.islice(payloads, hi - lo)]
            results = []
            for result in run(process_photo, tasks):
                results.append(result)
                bar.update(1)
            _finish_shard(output, shard, items[lo:hi], results, options)
    bar.close()
    return _write_manifest(output, spec, source, items, split_mode, options, time.time() - start)
