"""The team's side: a shared MLflow tracking server and the UI.

- `server`: `python -m skinexp server` (options, the admin password, MLflow's basic-auth app, start and stop) and
  its `user add|grant` subcommands.
- `postgres`: the private PostgreSQL cluster under runs/server/postgres/ used when no `database=` is given.
- `users`: the `user` subcommands, through MLflow's own auth client (`skinexp.tracking.auth`).
- `ui`: `python -m skinexp ui`, the MLflow UI over a local store.
"""
