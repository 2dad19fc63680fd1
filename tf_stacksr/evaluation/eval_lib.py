"""Score super-resolution methods on a face set, and FID between image sets.

`evaluate` streams the faces once: each batch of HR ground truths is degraded exactly as in
training (`pairs.downscale` then uint8 quantisation gives the LR input), every method
upscales the same LR batch, and the scores accumulate per method (FID statistics, per-image
PSNR/SSIM, dlib descriptors, SFace embeddings), so thousands of faces never sit in memory.
FID is measured between each method's SR set and the HR set, as in the paper (Section 4.3).
With `framings`, the faces of prepared shards are cropped again in each framing
(`eval_data.framed_faces`) and every method is scored on each, one pass per framing.

`fid_between` is the pytorch-fid command line: two folders (or `.npz` statistics) -> FID.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from typing import Sequence

import numpy as np
import tensorflow as tf
from absl import logging
from tqdm import tqdm

from tf_stacksr import config
from tf_stacksr.data import framing, pairs
from tf_stacksr.evaluation import eval_data, eval_report, methods
from tf_stacksr.metrics import fid, identity, image, sface


@dataclasses.dataclass(frozen=True)
class EvalOptions:
    data: str
    scale: int = 4
    hr_size: int = 64
    methods: tuple[str, ...] = (methods.BICUBIC,)
    output_dir: str = "eval"
    batch_size: int = 32
    limit: int | None = None
    skip: int = 0
    split: str = "test"
    figure_faces: int = 6
    identity: bool = True
    verification_pairs: int = 3000
    seed: int = 0
    fid_cache: str | None = None
    framings: tuple[str, ...] = ()  # data.framing names; empty: the faces as `data` holds them
    command: str = ""


class _Judges:
    """The identity recognizers, loaded once: dlib's descriptor and SFace (None without identity scoring)."""

    def __init__(self, enabled: bool):
        self.dlib = identity.FaceIdentity() if enabled else None
        self.sface = sface.FaceSimilarity() if enabled else None


class _MethodScores:
    """Running scores of one method."""

    def __init__(self, name: str):
        self.name = name
        self.per_image: dict[str, list[np.ndarray]] = {k: [] for k in ("psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb")}
        self.fid_stats = fid.StatsAccumulator()
        self.descriptors: list[np.ndarray] = []
        self.sface_cosines: list[np.ndarray] = []

    def add(self, sr: np.ndarray, hr: np.ndarray, features: fid.InceptionFeatures, judges: _Judges, truth: _TruthBatch) -> None:
        for key, values in image.image_metrics(sr, hr).items():
            self.per_image[key].append(values)
        self.fid_stats.update(features(sr))
        if judges.dlib is not None:
            self.descriptors.append(judges.dlib.descriptors(sr, truth.boxes))
            self.sface_cosines.append(sface.cosine(judges.sface.embeddings(sr, truth.matrices), truth.embeddings))

    def summary(self, hr_stats: fid.FidStats, hr_descriptors: np.ndarray | None, pairs_ijs) -> dict:
        stats = self.fid_stats.result()
        row = {"method": self.name, "n": stats.n, "fid": fid.fid(stats, hr_stats)}
        row.update({k: float(np.mean(np.concatenate(v))) for k, v in self.per_image.items()})
        if hr_descriptors is not None:
            sr_descriptors = np.concatenate(self.descriptors)
            dist = identity.distances(sr_descriptors, hr_descriptors)
            row["identity_distance"] = float(dist.mean())
            row["same_person_rate"] = float(np.mean(dist < identity.SAME_PERSON_THRESHOLD))
            row["verification_accuracy"] = identity.verification_accuracy(sr_descriptors, *pairs_ijs)
            cosines = np.concatenate(self.sface_cosines)
            row["sface_cosine"] = float(cosines.mean())
            row["sface_same_person_rate"] = float(np.mean(cosines >= sface.SAME_PERSON_COSINE))
        return row


@dataclasses.dataclass
class _TruthBatch:
    """Where the recognizers look on one batch of ground truths, reused for every method's faces."""

    boxes: Sequence = ()  # dlib face boxes
    matrices: Sequence = ()  # SFace's ArcFace crops
    embeddings: np.ndarray | None = None  # SFace embeddings of the ground truths


def _degraded_batches(source: eval_data.FaceSource, lr_size: int, batch_size: int) -> tf.data.Dataset:
    """(keys, identities, HR uint8, LR uint8) batches: the LR is the training degradation of the HR."""

    def degrade(key, ident, hr):
        return key, ident, pairs.float_to_uint8(hr), pairs.float_to_uint8(pairs.downscale(hr, lr_size))

    ds = source.dataset.map(degrade, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.ignore_errors(log_warning=True).batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _unique_names(names: Sequence[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return out


def _open_methods(opts: EvalOptions, cfg: config.Config) -> tuple[list, list[str]]:
    """Bicubic and every method of `opts.methods` as upscalers, with the names their rows get."""
    labelled = [methods.split_label(m) for m in opts.methods if m != methods.BICUBIC]
    specs = [methods.BICUBIC] + [m for _, m in labelled]
    labels = [None] + [label for label, _ in labelled]
    ups = [methods.resolve(m, cfg.scale, cfg.hr_size) for m in specs]
    return ups, _unique_names([label or methods.display_name(u, m) for u, m, label in zip(ups, specs, labels)])


class _TruthScores:
    """Running statistics of the HR ground truths every method is compared with."""

    def __init__(self, judges: _Judges):
        self.judges, self.fid_stats = judges, fid.StatsAccumulator()
        self.descriptors: list[np.ndarray] = []
        self.identities: list[str | None] = []
        self.no_face = self.no_yunet_face = 0

    def add(self, hr: np.ndarray, ids: np.ndarray, features: fid.InceptionFeatures) -> _TruthBatch:
        """Accumulate one batch; returns where the recognizers found its faces (empty without identity scoring)."""
        self.identities.extend(i.decode() or None for i in ids)
        self.fid_stats.update(features(hr))
        faces = self.judges.dlib
        if faces is None:
            return _TruthBatch()
        boxes, missed = faces.face_boxes(hr)
        self.no_face += missed
        self.descriptors.append(faces.descriptors(hr, boxes))
        matrices, missed = self.judges.sface.matrices(hr, lambda k: faces.landmarks(hr[k], boxes[k]))
        self.no_yunet_face += missed
        return _TruthBatch(boxes, matrices, self.judges.sface.embeddings(hr, matrices))


def evaluate(opts: EvalOptions) -> dict:
    """Score bicubic and every method in `opts.methods` (on each of `opts.framings`, if any); write
    results.{md,json} and comparison.png (one comparison_<framing>.png per framing)."""
    start = time.time()
    cfg = config.Config(hr_size=opts.hr_size, scale=opts.scale)  # validates --scale/--hr_size as training does
    framings = [framing.parse(f).name for f in opts.framings]  # a misspelt name fails before any model loads
    ups, names = _open_methods(opts, cfg)
    features = fid.shared_features(opts.fid_cache)
    judges = _Judges(opts.identity)
    if framings:
        report = {"data": opts.data, "scale": cfg.scale, "hr_size": cfg.hr_size, "lr_size": cfg.lr_size, "framings": []}
        for name in framings:
            source = eval_data.framed_faces(opts.data, name, cfg.hr_size, opts.limit, opts.split, opts.skip)
            part = _score(opts, cfg, source, ups, names, features, judges, eval_report.framing_figure_file(name))
            report["framings"].append({"framing": name, **part})
        report.update(rows=eval_report.framing_rows(report), command=opts.command)
    else:
        source = eval_data.open_faces(opts.data, cfg.hr_size, opts.limit, opts.split, opts.skip)
        report = _score(opts, cfg, source, ups, names, features, judges, eval_report.FIGURE_FILE)
    report["wall_time_s"] = round(time.time() - start, 1)
    eval_report.write_reports(report, opts.output_dir)
    return report


def _score(opts: EvalOptions, cfg: config.Config, source: eval_data.FaceSource, ups: Sequence, names: Sequence[str],
           features: fid.InceptionFeatures, judges: _Judges, figure_file: str) -> dict:
    """Every method scored on one face source: its report, and its comparison figure written."""
    truth = _TruthScores(judges)
    scores = [_MethodScores(name) for name in names]
    figure_lr, figure_hr, figure_sr = [], [], [[] for _ in names]
    counter = eval_data.SkipCounter(source.size, source.keys)
    batches = _degraded_batches(source, cfg.lr_size, opts.batch_size).as_numpy_iterator()
    for keys, ids, hr, lr in tqdm(batches, total=math.ceil(source.size / opts.batch_size), desc="evaluate", unit="batch"):
        counter.add(keys)
        found = truth.add(hr, ids, features)
        take = max(0, opts.figure_faces - len(figure_hr))
        figure_lr.extend(lr[:take])
        figure_hr.extend(hr[:take])
        for up, score, shown in zip(ups, scores, figure_sr):
            sr = methods.check_output(score.name, lr, up(lr), cfg.scale)
            score.add(sr, hr, features, judges, found)
            shown.extend(sr[:take])
    if counter.seen < 2:
        raise ValueError(f"--data={opts.data!r}: {counter.seen} readable faces; FID needs at least 2")
    columns = [("LR input", figure_lr), *zip(names, figure_sr), ("ground truth", figure_hr)]
    os.makedirs(opts.output_dir, exist_ok=True)
    eval_report.comparison_figure(columns, os.path.join(opts.output_dir, figure_file), cfg.hr_size)
    if counter.skipped:
        logging.warning("skipped %d unreadable images, e.g. %s", counter.skipped, counter.skipped_keys()[:3])
    return _report(opts, cfg, source, counter, truth, scores)


def _report(opts: EvalOptions, cfg: config.Config, source: eval_data.FaceSource, counter: eval_data.SkipCounter,
            truth: _TruthScores, scores: Sequence[_MethodScores]) -> dict:
    scored = truth.judges.dlib is not None
    hr_desc = np.concatenate(truth.descriptors) if scored else None
    pair_ijs = identity.verification_pairs(truth.identities, opts.verification_pairs, opts.seed)
    hr_fid = truth.fid_stats.result()
    return {
        "data": opts.data,
        "source": source.description,
        "scale": cfg.scale,
        "hr_size": cfg.hr_size,
        "lr_size": cfg.lr_size,
        "n_faces": counter.seen,
        "n_skipped": counter.skipped,
        "skipped": counter.skipped_keys()[:20],
        "methods": [s.summary(hr_fid, hr_desc, pair_ijs) for s in scores],
        "identity": None if not scored else {
            "threshold": identity.SAME_PERSON_THRESHOLD,
            "no_face_detected": truth.no_face,
            "sface_threshold": sface.SAME_PERSON_COSINE,
            "sface_no_yunet_face": truth.no_yunet_face,
            "verification_pairs": int(len(pair_ijs[2])),
            "hr_verification_accuracy": identity.verification_accuracy(hr_desc, *pair_ijs),
        },
        "command": opts.command,
    }


def folder_or_npz_stats(path: str, features: fid.InceptionFeatures, batch_size: int) -> fid.FidStats:
    """FID statistics of an image folder (computed) or of an `.npz` (loaded)."""
    if fid.is_stats_file(path):
        return fid.FidStats.load(path)
    batches, counter = eval_data.fid_image_batches(path, batch_size)
    acc = fid.StatsAccumulator()
    for _, images in tqdm(batches, total=math.ceil(counter.size / batch_size), desc=os.path.basename(os.path.normpath(path)), unit="batch"):
        acc.update(features(images))
    if counter.skipped:
        logging.warning("%s: skipped %d unreadable images, e.g. %s", path, counter.skipped, counter.skipped_keys()[:3])
    return acc.result()


def fid_between(path_a: str, path_b: str, batch_size: int = 50, cache: str | None = None) -> tuple[float, int, int]:
    """(FID, n_a, n_b) between two folders of images and/or `.npz` statistics files."""
    features = fid.shared_features(cache)
    a = folder_or_npz_stats(path_a, features, batch_size)
    b = folder_or_npz_stats(path_b, features, batch_size)
    return fid.fid(a, b), a.n, b.n


def save_folder_stats(folder: str, output: str, batch_size: int = 50, cache: str | None = None) -> fid.FidStats:
    """Compute a folder's FID statistics once and save them as `.npz` (mu, sigma, n)."""
    if not output.lower().endswith(".npz"):
        raise ValueError(f"--save_stats output {output!r}: expected a path ending in .npz")
    stats = folder_or_npz_stats(folder, fid.shared_features(cache), batch_size)
    stats.save(output)
    return stats
