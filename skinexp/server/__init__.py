"""`python -m skinexp server [...]`: a team's MLflow tracking server (PostgreSQL, proxied artifacts, logins), and
`server user add NAME` / `server user grant NAME experiment=... permission=...` to manage its users.

- `serve.py`: the server itself (options, the admin password, MLflow's basic-auth app, start and stop).
- `postgres.py`: the private PostgreSQL cluster under runs/server/postgres/ used when no `database=` is given.
- `users.py`: the `user` subcommands, through MLflow's own auth client (`skinexp.tracking.auth`).
"""
from __future__ import annotations


def server_command(args: list[str]) -> int:
    if args and args[0] == "user":
        from skinexp.server.users import user_command

        return user_command(args[1:])
    from skinexp.server.serve import serve_command

    return serve_command(args)
