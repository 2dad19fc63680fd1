"""Where `prepare` reads photos from, how they are labelled, and how they are split.

Sources: `FolderSource` (photos under a folder, recursive, labelled by an identity file such as
CelebA's, by person folder as LFW's, or not at all) and `TfdsSource` (a TensorFlow Datasets
dataset already on disk, never downloaded). `open_source` picks one from the --input string.
`assign_splits` sends each photo to train or test: by top folder, by whole identity (no person
in both), or by a seeded random draw.
"""

from __future__ import annotations

import collections
import dataclasses
import os
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np

from tf_stacksr import files

if TYPE_CHECKING:
    from tf_stacksr.data.prepare import PrepareOptions

SPLIT_MODES = ("auto", "folder", "identity", "random", "none")
LABEL_MODES = ("auto", "file", "folder", "none")
FOLDER_SPLITS = ("train", "test", "val", "validation", "valid")
IDENTITY_FILES = ("identity.txt", "identity_CelebA.txt")


@dataclasses.dataclass(frozen=True)
class Item:
    """One source photo: its key (relative path or tfds split/index), label and output split."""

    key: str
    identity: str
    split: str = ""


# ---- sources ---------------------------------------------------------------------------------
class FolderSource:
    """Photos under a folder (recursive), labelled by an identity file, by person folder or not at all."""

    kind = "folder"

    def __init__(self, root: str, options: PrepareOptions):
        if not os.path.isdir(root):
            raise ValueError(f"--input={root!r}: expected a folder of photos or tfds:<name>, no such folder")
        self.root = root
        keys = [os.path.relpath(path, root) for path in files.list_images(root)]
        if not keys:
            raise ValueError(f"--input={root!r}: no photos ({', '.join(files.IMAGE_EXTENSIONS)}) found")
        self.labels = options.labels
        identity_file = options.identity_file or next((os.path.join(root, n) for n in IDENTITY_FILES if os.path.isfile(os.path.join(root, n))), "")
        if self.labels in ("auto", "file") and identity_file:
            labels = read_identity_file(identity_file)
            self.labels = "file"
            self.items = [Item(k, labels.get(os.path.basename(k), "")) for k in keys]
        elif self.labels == "file":
            raise ValueError(f"--labels=file: expected --identity_file or one of {IDENTITY_FILES} in {root}")
        elif self.labels == "folder" or (self.labels == "auto" and all(os.sep in k for k in keys) and not _has_split_folders(keys)):
            self.labels = "folder"  # LFW layout: <Person>/<photo>, the person is the label
            self.items = [Item(k, k.split(os.sep)[-2]) for k in keys]
        else:
            self.labels = "none"
            self.items = [Item(k, "") for k in keys]

    def payloads(self, indices: Sequence[int]) -> Iterator[tuple[int, Any]]:
        for i in indices:
            yield i, os.path.join(self.root, self.items[i].key)


class TfdsSource:
    """A TFDS dataset already prepared on this machine (`tfds:celeb_a`, `tfds:lfw`); never downloads.

    The label is the `label` feature (LFW: the person) or `identity` when present; images are
    read still encoded, so the workers decode them exactly like files.
    """

    kind = "tfds"

    def __init__(self, name: str, options: PrepareOptions):
        import tensorflow_datasets as tfds

        self.tfds = tfds
        try:
            self.builder = tfds.builder(name, data_dir=options.tfds_data_dir or None)
        except Exception as err:  # unknown name or broken registry
            raise ValueError(f"--input=tfds:{name}: no such TFDS dataset ({err})") from None
        if not self.builder.is_prepared():
            raise ValueError(
                f"--input=tfds:{name}: not prepared under {self.builder.data_dir}; "
                "nothing is downloaded here: prepare it with tfds on a connected machine and pass --tfds_data_dir")
        features = self.builder.info.features
        self.label_key = next((k for k in ("identity", "label") if k in features), None)
        self.splits = sorted(self.builder.info.splits.keys())
        self.labels = "none" if self.label_key is None or options.labels == "none" else "tfds"
        self.items = []
        for split in self.splits:
            for index, label in enumerate(self._labels(split)):
                self.items.append(Item(f"{split}/{index}", label if self.labels == "tfds" else ""))

    def _dataset(self, split: str):
        return self.builder.as_dataset(split=split, shuffle_files=False, decoders={"image": self.tfds.decode.SkipDecoding()})

    def _labels(self, split: str) -> Iterator[str]:
        if self.label_key is None:
            yield from ("" for _ in range(self.builder.info.splits[split].num_examples))
            return
        feature = self.builder.info.features[self.label_key]
        for ex in self.tfds.as_numpy(self._dataset(split).map(lambda e: e[self.label_key])):
            if hasattr(feature, "int2str") and not isinstance(ex, bytes):
                yield feature.int2str(int(ex))
            else:
                yield ex.decode("utf-8") if isinstance(ex, bytes) else str(ex)

    def payloads(self, indices: Sequence[int]) -> Iterator[tuple[int, Any]]:
        wanted = set(indices)
        position = 0
        for split in self.splits:
            for encoded in self.tfds.as_numpy(self._dataset(split).map(lambda e: e["image"])):
                if position in wanted:
                    yield position, encoded
                position += 1


def open_source(spec: str, options: PrepareOptions):
    """`tfds:<name>` or a folder path."""
    if spec.startswith("tfds:"):
        return TfdsSource(spec[len("tfds:"):], options)
    return FolderSource(spec, options)


def read_identity_file(path: str) -> dict[str, str]:
    """CelebA-style `<file name> <identity>` lines (comments with #) -> {file name: identity}."""
    labels = {}
    with open(path) as fh:
        for number, line in enumerate(fh, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split()
            if len(parts) != 2:
                raise ValueError(f"{path}:{number}: expected '<file> <identity>', got {line!r}")
            labels[parts[0]] = parts[1]
    return labels


def _has_split_folders(keys: Sequence[str]) -> bool:
    """Every photo under train/, test/, val/... (TFDS keys are `split/index`, so they qualify)."""
    return all(k.split(os.sep)[0] in FOLDER_SPLITS for k in keys)


# ---- splits ----------------------------------------------------------------------------------
def assign_splits(items: Sequence[Item], mode: str, test_fraction: float, seed: int) -> tuple[list[Item], str]:
    """Give every item a split; returns (items, mode used).

    folder: the top folder (train/test/val...) as given. identity: whole identities go to
    test, in a seeded order, until it holds `test_fraction` of the items (no person in two
    splits; unlabelled items count as their own identity). random: a seeded item split.
    auto: folder if every photo sits under train/test/... and there are at least two of them,
    else identity if labelled, else random.
    """
    keys = [it.key for it in items]
    if mode == "auto":
        several = len({k.split(os.sep)[0] for k in keys}) > 1
        mode = "folder" if several and _has_split_folders(keys) else "identity" if any(it.identity for it in items) else "random"
    if mode == "folder":
        if not _has_split_folders(keys):
            raise ValueError(f"--split=folder: expected every photo under one of {FOLDER_SPLITS}/")
        return [dataclasses.replace(it, split=it.key.split(os.sep)[0]) for it in items], mode
    if mode == "none" or test_fraction == 0:
        return [dataclasses.replace(it, split="train") for it in items], mode
    rng = np.random.default_rng(seed)
    if mode == "random":
        test = set(rng.permutation(len(items))[: round(test_fraction * len(items))].tolist())
        return [dataclasses.replace(it, split="test" if i in test else "train") for i, it in enumerate(items)], mode
    groups: dict[str, int] = collections.Counter(it.identity or f"\0{it.key}" for it in items)
    names = sorted(groups)
    test_groups, taken = set(), 0
    for index in rng.permutation(len(names)):
        if taken >= test_fraction * len(items):
            break
        test_groups.add(names[index])
        taken += groups[names[index]]
    return [dataclasses.replace(it, split="test" if (it.identity or f"\0{it.key}") in test_groups else "train") for it in items], mode
