"""`python -m skinexp COMMAND [overrides]`: argv[1] picks the command; nothing heavy is imported here."""
from __future__ import annotations

import sys

USAGE = """usage: python -m skinexp COMMAND [hydra options] [key=value ...]

commands:
  train      train a U-Net on the configured dataset and track it in MLflow (Hydra: -m for sweeps)
  evaluate   score a trained run on a dataset split: per-image metrics, summary, figures
  predict    write mask PNGs (and predict.npy) for a folder of images or a .npy file
  data       data check | convert | synth: inspect, convert or generate datasets
  compare    print a sweep's leaderboard from the MLflow store
  rerun      train again from a logged run's own config
  runs       list or fix runs left RUNNING by a killed process (--stale [--fix])
  ui         the MLflow UI on 127.0.0.1 over the local store (what `make ui` runs)

`python -m skinexp COMMAND --help` shows a command's config groups and options.
Every config key is documented in README.md."""


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    command, args = argv[0], argv[1:]
    from skinexp import cli

    handler = cli.COMMANDS.get(command)
    if handler is None:
        print(f"skinexp: error: unknown command. Choose one of {', '.join(cli.COMMANDS)}. Received: {command}",
              file=sys.stderr)
        return 2
    return handler(args) or 0


if __name__ == "__main__":
    sys.exit(main())
