"""`python -m skinexp server [host=127.0.0.1] [port=5000] [workers=2] [database=postgresql://...] [artifacts=...]`

An MLflow tracking server for a team: the backend store on PostgreSQL (the given `database`, else a private cluster
under runs/server/postgres/, started and stopped with the server), artifacts proxied by the server (under
`artifacts`, default runs/server/artifacts/), logins through MLflow's basic-auth app. The admin user is `admin` with
the password in SKINEXP_SERVER_ADMIN_PASSWORD (required; MLflow's old default is refused). Ctrl-C or SIGTERM stops the
server and the database it started, leaving no process behind.

No secret goes on a command line (`ps` shows those to every local account): a database URI with a password comes
from SKINEXP_SERVER_DATABASE, and reaches MLflow as MLFLOW_BACKEND_STORE_URI. runs/server/ is the server's alone (0700;
0710 with group `postgres` as root, so that user reaches its cluster), and whatever the server writes is 0600/0700.
One server per folder: a second one started there is refused while the first holds runs/server/server.lock.
"""
from __future__ import annotations

import fcntl
import grp
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Optional

import skinexp.team.postgres as postgres
from skinexp.cli.options import check_port_free, parse_options, usage, wants_help
from skinexp.errors import ConfigError, TrackingError

ADMIN_PASSWORD_ENV = "SKINEXP_SERVER_ADMIN_PASSWORD"
DATABASE_ENV = "SKINEXP_SERVER_DATABASE"
ADMIN = "admin"
LEGACY_DEFAULT_PASSWORD = "password1234"  # what basic_auth.ini shipped before MLflow 2.17 (GHSA-gq3w-7jj3-x7gr)
SERVER_DIR = Path("runs/server")
@dataclass
class ServerOptions:
    host: str = "127.0.0.1"
    port: int = 5000
    workers: int = 2
    database: str = ""  # postgresql://user@host:port/db, without its password; empty: a private cluster
    artifacts: str = str(SERVER_DIR / "artifacts")
READY_SECONDS = 120


def admin_password() -> str:
    """The admin password from the environment; ConfigError when unset, too short, or MLflow's old default."""
    password = os.environ.get(ADMIN_PASSWORD_ENV, "")
    if not password:
        raise ConfigError(f"the server needs an admin password: set {ADMIN_PASSWORD_ENV} (at least 12 characters). "
                          f"Received: {ADMIN_PASSWORD_ENV}=(unset)")
    if password == LEGACY_DEFAULT_PASSWORD:
        raise ConfigError(f"{ADMIN_PASSWORD_ENV} is MLflow's old default admin password, which everyone knows; pick "
                          f"another. Received: {ADMIN_PASSWORD_ENV}={LEGACY_DEFAULT_PASSWORD}")
    if len(password) < 12:
        raise ConfigError(f"{ADMIN_PASSWORD_ENV} must have at least 12 characters (MLflow's rule). "
                          f"Received: {ADMIN_PASSWORD_ENV} of {len(password)} characters")
    return password


def _number(options: ServerOptions, key: str, low: int, high: int) -> int:
    value = getattr(options, key)
    if not low <= value <= high:
        raise ConfigError(f"server {key} must be a number from {low} to {high}. Received: {key}={value}")
    return value


def _check_installed(external_database: bool) -> None:
    missing = [name for name, module in (("mlflow[auth]", "flask_wtf"), ("psycopg[binary]", "psycopg"))
               if find_spec(module) is None]
    if missing:
        raise ConfigError(f"the server needs the `server` extra: run `make install-server` (pip install -e "
                          f"'.[server]'). Received: missing {', '.join(missing)}")
    if not external_database:
        postgres.bin_dir()


def _secrets(root: Path) -> dict[str, str]:
    """Passwords of the private cluster and the key MLflow signs its forms with: made once, kept in one file."""
    path = root / "secrets.json"
    if path.is_file():
        path.chmod(0o600)  # one written by an older skinexp
        return json.loads(path.read_text())
    values = {name: secrets.token_urlsafe(24) for name in ("postgres_password", "mlflow_password", "secret_key")}
    postgres.write_private(path, json.dumps(values, indent=1) + "\n")
    return values


def _auth_config(root: Path, auth_database: str) -> Path:
    """MLflow's basic-auth settings: new users may read every experiment; writing needs a grant (EDIT).

    Checked logins are cached for 60 s per worker: without it every request pays a PBKDF2 hash (0.45 s measured
    here), and a training run makes hundreds. A changed password or a deleted user takes up to 60 s to reach all
    workers.
    """
    path = root / "basic_auth.ini"
    # 0600: it holds the database password.
    postgres.write_private(path, f"[mlflow]\ndefault_permission = READ\ndatabase_uri = {auth_database}\n"
                           f"admin_username = {ADMIN}\nauth_cache_ttl_seconds = 60\n"
                           f"authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
    return path


def _mlflow_command(artifacts: Path, host: str, port: int, workers: int) -> list[str]:
    """`mlflow server`'s command line: no secret in it; the backend URI goes in MLFLOW_BACKEND_STORE_URI."""
    mlflow = Path(sys.executable).with_name("mlflow")
    launcher = [str(mlflow)] if mlflow.exists() else [sys.executable, "-m", "mlflow"]
    return [*launcher, "server", "--app-name", "basic-auth",
            "--artifacts-destination", str(artifacts), "--serve-artifacts", "--host", host, "--port", str(port),
            "--workers", str(workers)]


def _last_lines(log: Path, count: int = 3) -> str:
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return " | ".join(lines[-count:])[-600:]


def _wait_ready(process: subprocess.Popen, url: str, log: Path) -> None:
    import requests

    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise TrackingError(f"the mlflow server exited with status {process.returncode} while starting: "
                                f"{_last_lines(log)}. Received: {log}")
        try:
            if requests.get(url + "/health", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise TrackingError(f"the mlflow server did not answer within {READY_SECONDS} s; see its log. Received: {log}")


def _check_admin_login(url: str, password: str) -> None:
    """The admin of an existing auth database must have the password we were given (MLflow ignores a new one)."""
    import requests

    answer = requests.get(url + "/api/2.0/mlflow/users/get", params={"username": ADMIN}, auth=(ADMIN, password),
                          timeout=10)
    if answer.status_code in (401, 403):
        raise ConfigError(f"the server's `{ADMIN}` user already has another password than {ADMIN_PASSWORD_ENV}; set "
                          f"that one (or change it through MLflow's update-password API). Received: HTTP "
                          f"{answer.status_code} for {ADMIN}")


def stop_group(process: subprocess.Popen, timeout: float = 15) -> None:
    """SIGTERM to the server's whole process group (uvicorn and its workers), SIGKILL to what outlives `timeout`."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            process.poll()
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
    process.poll()


def database_option(options: ServerOptions) -> str:
    """`database=` without a password, else SKINEXP_SERVER_DATABASE; ConfigError for a password on the command line
    (every local account reads it with `ps`) or a URI that is not PostgreSQL's."""
    from urllib.parse import urlsplit

    from skinexp.config.checks import redact_uri

    given = options.database
    if given and urlsplit(given).password is not None:
        raise ConfigError(f"server database must not carry its password on the command line (`ps` shows it to every "
                          f"local account); put the URI in {DATABASE_ENV}, or the password in PGPASSWORD or ~/.pgpass. "
                          f"Received: database={redact_uri(given)}")
    database = given or os.environ.get(DATABASE_ENV, "")
    if database and database.partition("://")[0].partition("+")[0] != "postgresql":
        key = "database" if given else DATABASE_ENV
        raise ConfigError(f"server {key} must be a PostgreSQL URI, postgresql://user:password@host:port/db. "
                          f"Received: {key}={database.split('@')[-1]}")
    return database


def lock_folder(root: Path):
    """An exclusive lock on `root` held while the returned file stays open; ConfigError when another server holds
    it (it would stop that server's database and share its files)."""
    path = root / "server.lock"
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    held = os.fdopen(descriptor, "r+")
    try:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        other = held.read().strip() or "unknown"
        held.close()
        raise ConfigError(f"another skinexp server runs from this folder; stop it first, or start this one from "
                          f"another folder. Received: {root} locked by pid {other}") from None
    held.seek(0)
    held.truncate()
    held.write(f"{os.getpid()}\n")
    held.flush()
    return held


def close_to_others(root: Path) -> None:
    """runs/server: 0700, the server's alone; as root 0710 with group `postgres`, the one other account that must
    pass through it (to its cluster under postgres/), and may list nothing in it."""
    if os.geteuid() == 0:
        try:
            os.chown(root, 0, grp.getgrnam(postgres.OWNER).gr_gid)
            root.chmod(0o710)
            return
        except KeyError:  # no postgres account: an external database
            pass
    root.chmod(0o700)


class _Stop(Exception):
    """SIGINT or SIGTERM arrived: stop the server."""


def _raise_stop(signum, frame):
    raise _Stop()


def server_command(args: list[str]) -> int:
    """`python -m skinexp server [...]` (its `user` subcommands are `skinexp.team.users`)."""
    if wants_help(args):
        print(usage("server", ServerOptions) + f"\n       python -m skinexp server user add NAME | user grant NAME "
              f"experiment=skinexp permission=READ|EDIT|MANAGE\n{ADMIN_PASSWORD_ENV} must hold the admin password.")
        return 0
    options = parse_options("server", args, ServerOptions)
    host, port = options.host, _number(options, "port", 1, 65535)
    workers = _number(options, "workers", 1, 64)
    database = database_option(options)
    password = admin_password()
    _check_installed(bool(database))
    check_port_free("server", host, port)
    root = (Path.cwd() / SERVER_DIR).resolve()
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    close_to_others(root)
    lock = lock_folder(root)
    artifacts = (Path.cwd() / options.artifacts).resolve()
    artifacts.mkdir(mode=0o700, parents=True, exist_ok=True)
    artifacts.chmod(0o700)
    keys = _secrets(root)

    previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    process: Optional[subprocess.Popen] = None
    url = f"http://{host}:{port}"
    try:
        if database:
            backend = auth_database = database
            where = database.split("@")[-1]
        else:
            cluster = postgres.start(root, keys["postgres_password"], keys["mlflow_password"])
            backend, auth_database = cluster.uri(postgres.DATABASES[0]), cluster.uri(postgres.DATABASES[1])
            where = f"private cluster {cluster.data_dir} on 127.0.0.1:{cluster.port}"
        log = root / "mlflow.log"
        env = {**os.environ, "MLFLOW_AUTH_CONFIG_PATH": str(_auth_config(root, auth_database)),
               "MLFLOW_BACKEND_STORE_URI": backend,
               "MLFLOW_AUTH_ADMIN_PASSWORD": password, "MLFLOW_FLASK_SERVER_SECRET_KEY": keys["secret_key"],
               # Job execution only serves MLflow's GenAI features; off, the server starts twice as fast.
               "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": os.environ.get("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")}
        print(f"skinexp: starting the tracking server on {url} (PostgreSQL: {where}; artifacts: {artifacts}; "
              f"log: {log}); it answers in 15-30 s", flush=True)
        env.pop(DATABASE_ENV, None)
        postgres.write_private(log, None)
        # umask 077: every artifact, folder and log the server makes is its own account's alone.
        with open(log, "a") as log_file:
            process = subprocess.Popen(_mlflow_command(artifacts, host, port, workers), env=env,
                                       stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                                       start_new_session=True, umask=0o077)
        _wait_ready(process, url, log)
        _check_admin_login(url, password)
        print(f"skinexp: tracking server ready at {url} (mlflow pid {process.pid}); clients: tracking.uri={url} "
              f"with MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD; Ctrl-C stops it", flush=True)
        while process.poll() is None:
            time.sleep(0.5)
        raise TrackingError(f"the mlflow server stopped by itself (status {process.returncode}): "
                            f"{_last_lines(log)}. Received: {log}")
    except _Stop:
        print("skinexp: stopping the tracking server", flush=True)
        return 0
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):  # a second Ctrl-C must not cut the clean-up short
            signal.signal(sig, signal.SIG_IGN)
        if process is not None:
            stop_group(process)
        if not database and (root / "postgres" / "PG_VERSION").is_file():
            postgres.stop(root / "postgres")  # also when a signal came while it was starting
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        lock.close()
