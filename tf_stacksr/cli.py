"""The `tf-stacksr` console script: `tf-stacksr COMMAND [ARGS...]`, one command per entry module.

Each command runs its module exactly as `python -m tf_stacksr.COMMAND ARGS...` would, so the
two spellings can never drift apart.
"""

from __future__ import annotations

from tf_stacksr import startup  # noqa: F401  first: hides TensorFlow's start-up lines

import importlib.util
import runpy
import sys

COMMANDS = {  # `tf-stacksr COMMAND -h` lists each command's options
    "enhance": "super-resolve the faces in photos",
    "export": "export a trained model as a SavedModel for TF Serving",
    "train": "train a model",
    "prepare": "align faces and write training shards",
    "evaluate": "score upscalers on a test set",
}


def available() -> dict[str, str]:
    return {c: h for c, h in COMMANDS.items() if importlib.util.find_spec(f"tf_stacksr.{c}") is not None}


def usage() -> str:
    lines = ["usage: tf-stacksr COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {c:<10}{h}" for c, h in available().items()]
    lines += ["", "tf-stacksr COMMAND -h lists the command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    command, rest = argv[0], argv[1:]
    if command not in available():
        print(f"tf-stacksr: unknown command {command!r}\n\n{usage()}", file=sys.stderr)
        return 2
    sys.argv = [f"tf-stacksr {command}", *rest]
    runpy.run_module(f"tf_stacksr.{command}", run_name="__main__", alter_sys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
