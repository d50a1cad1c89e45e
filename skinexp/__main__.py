"""`python -m skinexp COMMAND [overrides]`: argv[1] picks the command; nothing heavy is imported here.

This is the one error boundary: a known error (`skinexp.errors.SkinexpError`) becomes the one
`skinexp: error: ... Received: ...` line and exit status 2, an interrupt 130 (SIGINT) or 143 (SIGTERM).
"""
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
  register   register a run's model as a new version of a registered model and point an alias at it
  serve      a REST endpoint (mlflow models serve) that takes images and answers masks
  ui         the MLflow UI on 127.0.0.1 over the local store (what `make ui` runs)
  server     a team's tracking server: PostgreSQL, logins, proxied artifacts (`server user add|grant` for users)

`python -m skinexp COMMAND --help` shows a command's config groups and options.
Every config key is documented in docs/configuration.md."""


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    command, args = argv[0], argv[1:]
    from skinexp import console, errors

    console.quiet_tensorflow_start_up()

    try:
        from skinexp.cli.commands import COMMANDS

        handler = COMMANDS.get(command)
        if handler is None:
            raise errors.ConfigError(f"unknown command. Choose one of {', '.join(COMMANDS)}. Received: {command}")
        return handler(args) or errors.EXIT_OK
    except errors.SkinexpError as error:
        print(f"skinexp: error: {error}", file=sys.stderr)
        return errors.EXIT_USAGE
    except KeyboardInterrupt as interrupt:
        print(errors.interrupt_message(interrupt), file=sys.stderr)
        return errors.exit_status(interrupt)


if __name__ == "__main__":
    sys.exit(main())
