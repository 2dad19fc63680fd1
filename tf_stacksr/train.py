"""Train the stacked SR GAN: `python -m tf_stacksr.train --flagfile=configs/quickstart.flags`.

Thin entry point: flags -> Config -> train_lib.train. Rerunning the same command resumes from
the latest checkpoint in --model_dir (or, if that one cannot be read, the newest that can).
"""

from absl import app, flags

from tf_stacksr import config as config_lib
from tf_stacksr.models import runs
from tf_stacksr.training import train_lib

config_lib.define_flags()


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    try:
        cfg = config_lib.from_flags(flags.FLAGS)
        cfg.check_data_dir()
    except ValueError as err:
        raise app.UsageError(str(err)) from err
    try:
        train_lib.train(cfg)
    except runs.UnreadableCheckpointError as err:
        raise SystemExit(f"train: {err}") from None


if __name__ == "__main__":
    app.run(main)
