"""`python -m skinexp server user add NAME [uri=...]` and
`python -m skinexp server user grant NAME experiment=skinexp permission=READ|EDIT|MANAGE [uri=...]`.

They call the server's own API as an admin: MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD when set, else
`admin` with SKINEXP_SERVER_ADMIN_PASSWORD. A new user's password comes from SKINEXP_SERVER_USER_PASSWORD, else it is
asked for on the terminal (twice).
"""
from __future__ import annotations

import getpass
import os
import sys
from dataclasses import dataclass

from skinexp.cli.options import parse_options, wants_help
from skinexp.errors import ConfigError
from skinexp.team.server import ADMIN, ADMIN_PASSWORD_ENV

USER_PASSWORD_ENV = "SKINEXP_SERVER_USER_PASSWORD"
DEFAULT_URI = "http://127.0.0.1:5000"
USAGE = ("usage: python -m skinexp server user add NAME [uri=http://127.0.0.1:5000]\n"
         "       python -m skinexp server user grant NAME experiment=skinexp permission=READ|EDIT|MANAGE [uri=...]\n"
         f"as an admin (MLFLOW_TRACKING_USERNAME / _PASSWORD, else {ADMIN} with {ADMIN_PASSWORD_ENV}); the new "
         f"user's password from {USER_PASSWORD_ENV} or the terminal")


@dataclass
class AddOptions:
    uri: str = DEFAULT_URI


@dataclass
class GrantOptions:
    experiment: str = "skinexp"
    permission: str = ""  # READ, EDIT or MANAGE
    uri: str = DEFAULT_URI


def _as_admin() -> None:
    """Credentials for MLflow's client, which reads them from the environment of this (short-lived) process."""
    if os.environ.get("MLFLOW_TRACKING_USERNAME") and os.environ.get("MLFLOW_TRACKING_PASSWORD"):
        return
    if not os.environ.get(ADMIN_PASSWORD_ENV):
        raise ConfigError(f"managing users needs an admin login: set {ADMIN_PASSWORD_ENV} (or MLFLOW_TRACKING_USERNAME "
                          f"and MLFLOW_TRACKING_PASSWORD). Received: {ADMIN_PASSWORD_ENV}=(unset)")
    os.environ["MLFLOW_TRACKING_USERNAME"] = ADMIN
    os.environ["MLFLOW_TRACKING_PASSWORD"] = os.environ[ADMIN_PASSWORD_ENV]


def _new_password(username: str) -> str:
    password = os.environ.get(USER_PASSWORD_ENV)
    if password is None:
        if not sys.stdin.isatty():
            raise ConfigError(f"no password for the new user: set {USER_PASSWORD_ENV} or run it in a terminal. "
                              f"Received: {USER_PASSWORD_ENV}=(unset)")
        password = getpass.getpass(f"password for {username}: ")
        if getpass.getpass("again: ") != password:
            raise ConfigError(f"the two passwords differ. Received: two passwords for {username}")
    if len(password) < 12:
        raise ConfigError(f"a password needs at least 12 characters (MLflow's rule). "
                          f"Received: a password of {len(password)} characters")
    return password


def user_command(args: list[str]) -> int:
    from skinexp.tracking import auth

    if wants_help(args) or len(args) < 2 or args[0] not in ("add", "grant") or "=" in args[1]:
        if wants_help(args):
            print(USAGE)
            return 0
        raise ConfigError(f"server user takes `add NAME` or `grant NAME experiment=... permission=...`. "
                          f"Received: {' '.join(args) or '(nothing)'}")
    action, username, rest = args[0], args[1], args[2:]
    if action == "add":
        options = parse_options("server user add", rest, AddOptions)
        password = _new_password(username)
        _as_admin()
        auth.add_user(options.uri, username, password)
        print(f"skinexp: user {username} added on {options.uri} (reads every experiment; "
              f"`server user grant {username} experiment=... permission=EDIT` lets it train there)")
        return 0
    options = parse_options("server user grant", rest, GrantOptions)
    permission = options.permission.upper()
    if permission not in auth.PERMISSIONS:
        raise ConfigError(f"permission must be one of {', '.join(auth.PERMISSIONS)}. "
                          f"Received: permission={options.permission or '(none)'}")
    _as_admin()
    experiment_id = auth.grant(options.uri, username, options.experiment, permission)
    print(f"skinexp: {username} has {permission} on experiment {options.experiment} (id {experiment_id}) "
          f"on {options.uri}")
    return 0
