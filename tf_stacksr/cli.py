"""The `tf-stacksr` console script: `tf-stacksr COMMAND [ARGS...]`, one command per entry module.

Each command runs its module exactly as `python -m tf_stacksr.COMMAND ARGS...` would, so the
two spellings can never drift apart.
"""

from __future__ import annotations

import importlib.util
import runpy
import sys

COMMANDS = {
    "enhance": "super-resolve the faces in photos (tf-stacksr enhance -h)",
    "export": "export a trained model as a SavedModel for TF Serving (--helpfull)",
    "train": "train a model (--helpfull)",
    "prepare": "align faces and write training shards (--helpfull)",
    "evaluate": "score upscalers on a test set (--helpfull)",
}


def available() -> dict[str, str]:
    return {c: h for c, h in COMMANDS.items() if importlib.util.find_spec(f"tf_stacksr.{c}") is not None}


def usage() -> str:
    lines = ["usage: tf-stacksr COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {c:<10}{h}" for c, h in available().items()]
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
