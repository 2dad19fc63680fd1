"""files: atomic writes leave nothing half-written, and a later writer removes what a killed one left."""

import os
import subprocess
import sys
import time

from conftest import REPO

from tf_stacksr import files

KILLED_WRITER = """
import os, signal, sys
from tf_stacksr import files
kind, target = sys.argv[1:]
with (files.atomic_folder if kind == "folder" else files.atomic_write)(target) as tmp:
    if kind == "folder":
        open(os.path.join(tmp, "saved_model.pb"), "wb").write(b"x" * 1000)
    else:
        open(tmp, "wb").write(b"x" * 1000)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def killed_while_writing(kind: str, target) -> list[str]:
    """Run a process that is SIGKILLed inside atomic_folder / atomic_write of `target`; returns what it left."""
    folder = os.path.dirname(str(target))
    before = set(os.listdir(folder)) if os.path.isdir(folder) else set()
    result = subprocess.run([sys.executable, "-c", KILLED_WRITER, kind, str(target)], cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == -9
    left = sorted(set(os.listdir(folder)) - before)
    assert left, "the killed writer left nothing to clean up"
    return left


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def age(path, hours: float) -> None:
    past = time.time() - hours * 3600
    os.utime(path, (past, past))


def test_atomic_folder_removes_what_a_killed_export_left(tmp_path):
    base = tmp_path / "models" / "stacksr"
    left = killed_while_writing("folder", base / "1")
    assert all(name.startswith(".1.tmp-") for name in left), left
    with files.atomic_folder(str(base / "1")) as tmp:
        open(os.path.join(tmp, "saved_model.pb"), "wb").write(b"ok")
    assert sorted(os.listdir(base)) == ["1"]
    assert open(base / "1" / "saved_model.pb", "rb").read() == b"ok"


def test_atomic_folder_keeps_live_and_other_targets_temporaries(tmp_path):
    tag = files._writer_tag()
    names = {
        f".1.tmp-{tag}-{dead_pid()}-abcd_123": "removed",    # this target, writer dead
        f".1.tmp-{tag}-{os.getpid()}-abcd_124": "kept",      # this target, writer alive (in use)
        f".2.tmp-{tag}-{dead_pid()}-abcd_125": "kept",       # another target
        f".1.tmp-x.tmp-{tag}-{dead_pid()}-abcd_126": "kept",  # the target "1.tmp-x"
        ".1.tmp-abcd_127": "removed",                        # an older version's name, 2 hours untouched
        ".1.tmp-abcd_128": "kept",                           # ... 10 minutes untouched
        f".1.tmp-{'0' * 8}-{os.getpid()}-abcd_129": "kept",  # another machine's writer, fresh
        f".1.tmp-{'0' * 8}-{os.getpid()}-abcd_130": "removed",  # ... 2 hours untouched
        f".1.old-{tag}-{dead_pid()}-abcd_131": "removed",    # the replaced version of a dead writer
    }
    if tag == "0" * 8:
        names = {k: v for k, v in names.items() if "0" * 8 not in k}
    for name in names:
        os.makedirs(tmp_path / name / "variables")
        open(tmp_path / name / "variables" / "data", "w").write("x")
    os.makedirs(tmp_path / "1")
    for name in (".1.tmp-abcd_127", f".1.tmp-{'0' * 8}-{os.getpid()}-abcd_130"):
        for path in (tmp_path / name / "variables" / "data", tmp_path / name / "variables", tmp_path / name):
            age(path, 2)
    age(tmp_path / ".1.tmp-abcd_128", 1 / 6)
    with files.atomic_folder(str(tmp_path / "1")):
        pass
    kept = {name for name in os.listdir(tmp_path) if name != "1"}
    assert kept == {name for name, fate in names.items() if fate == "kept"}
    # killed between moving the old version aside and the new one in: the old one is all there is
    aside = tmp_path / f".3.old-{tag}-{dead_pid()}-abcd_132"
    os.makedirs(aside / "folder")
    with files.atomic_folder(str(tmp_path / "3")):
        pass
    assert aside.exists()


def test_atomic_write_removes_what_a_killed_writer_left(tmp_path):
    out = tmp_path / "enhanced"
    left = killed_while_writing("file", out / "photo.png")
    assert all(name.startswith(".tmp-") and name.endswith("-photo.png") for name in left), left
    live = f".tmp-{files._writer_tag()}-{os.getpid()}-abcd_123-photo.png"  # a live writer's: in use
    open(out / live, "wb").write(b"half")
    legacy = out / ".tmp-abcd_124-photo.png"  # an older version's name, 2 hours untouched
    open(legacy, "wb").write(b"half")
    age(legacy, 2)
    with files.atomic_write(str(out / "photo.png")) as tmp:
        open(tmp, "wb").write(b"ok")
    assert sorted(os.listdir(out)) == [live, "photo.png"]


def test_text_and_json_writers_make_their_folder_and_replace_whole_files(tmp_path):
    path = tmp_path / "new" / "report.md"
    files.write_text(str(path), "first, longer text\n")
    files.write_text(str(path), "second\n")
    assert path.read_text() == "second\n" and os.listdir(path.parent) == ["report.md"]
    files.write_json(str(tmp_path / "other" / "r.json"), {"b": 1, "a": [2]})
    assert (tmp_path / "other" / "r.json").read_text() == '{\n "a": [\n  2\n ],\n "b": 1\n}'
