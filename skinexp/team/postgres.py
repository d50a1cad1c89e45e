"""A private PostgreSQL cluster for the tracking server: created once under `<root>/postgres/`, started with the
server on 127.0.0.1 only (no Unix socket, scram-sha-256 passwords), stopped with it.

Debian's PostgreSQL (`initdb`, `pg_ctl`, `psql` under /usr/lib/postgresql/<version>/bin). PostgreSQL refuses to run
as root, so as root its commands run as the `postgres` user, which owns the cluster's folder.
"""
from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from skinexp.errors import ConfigError, TrackingError

ROLE = "mlflow"
DATABASES = ("mlflow", "mlflow_auth")  # the tracking store, the basic-auth app's users and grants
OWNER = "postgres"


@dataclass
class Cluster:
    """A running private cluster and what its clients need."""

    data_dir: Path
    port: int
    password: str  # of ROLE

    def uri(self, database: str) -> str:
        return f"postgresql://{ROLE}:{self.password}@127.0.0.1:{self.port}/{database}"


def bin_dir() -> Path:
    """The newest installed PostgreSQL's binaries; ConfigError saying how to install it when there is none."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                      key=lambda p: int(re.sub(r"\D", "", p.parent.parent.name) or 0), reverse=True)
    if versions:
        return versions[0].parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise ConfigError("PostgreSQL is not installed: run `make install-server` (as root it installs Debian's "
                      "postgresql), or pass database=postgresql://... Received: database=(the private cluster)")


def _as_owner(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", OWNER, "--", *command]


def _run(command: list[str], what: str, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise TrackingError(f"PostgreSQL: {what} failed ({detail[-1] if detail else result.returncode}). "
                            f"Received: {' '.join(command[:8])}")
    return result


def _give_to_owner(path: Path) -> None:
    if os.geteuid() == 0:
        owner = pwd.getpwnam(OWNER)
        os.chown(path, owner.pw_uid, owner.pw_gid)


def _check_reachable_by_owner(folder: Path) -> None:
    """As root the cluster belongs to `postgres`, who must be able to reach its folder through every parent."""
    if os.geteuid() != 0:
        return
    try:
        pwd.getpwnam(OWNER)
    except KeyError:
        raise ConfigError(f"there is no `{OWNER}` user to own the private PostgreSQL cluster; install Debian's "
                          f"postgresql (make install-server). Received: {folder}") from None
    probe = subprocess.run(["runuser", "-u", OWNER, "--", "test", "-x", str(folder)], capture_output=True)
    if probe.returncode != 0:
        raise ConfigError(f"the `{OWNER}` user cannot reach the server folder (a parent folder is closed to others; "
                          f"chmod o+x it or run from elsewhere). Received: {folder}")


def create_cluster_once(root: Path, superuser_password: str) -> Path:
    """`<root>/postgres`, initialised once (a cluster that is there already is kept as it is)."""
    data_dir = root / "postgres"
    if (data_dir / "PG_VERSION").is_file():
        return data_dir
    root.mkdir(parents=True, exist_ok=True)
    _check_reachable_by_owner(root)
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o700)
    _give_to_owner(data_dir)
    password_file = root / ".initdb-password"  # initdb reads the superuser's password from a real file
    write_private(password_file, superuser_password + "\n", owner=OWNER if os.geteuid() == 0 else None)
    try:
        _run(_as_owner([str(bin_dir() / "initdb"), "-D", str(data_dir), "-U", "postgres", "-E", "UTF8",
                        f"--pwfile={password_file}", "--auth-host=scram-sha-256", "--auth-local=scram-sha-256",
                        "--no-instructions"]), "initdb")
    finally:
        password_file.unlink(missing_ok=True)
    return data_dir


def write_private(path: Path, text: str | None, owner: str | None = None) -> None:
    """`text` into `path` (None: keep what it holds), readable by its owner alone from the moment the file exists
    (created 0600, an older file's mode narrowed before anything is written); `owner` (as root) takes the file
    before the secret goes in."""
    truncate = os.O_TRUNC if text is not None else 0
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | truncate, 0o600)
    try:
        os.fchmod(descriptor, 0o600)
        if owner is not None:
            account = pwd.getpwnam(owner)
            os.fchown(descriptor, account.pw_uid, account.pw_gid)
        if text:
            os.write(descriptor, text.encode())
    finally:
        os.close(descriptor)


def unused_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _psql(port: int, superuser_password: str, sql: str) -> str:
    """`sql` through psql's stdin (a role's password in it stays off every command line `ps` shows); the superuser's
    password through the environment, which only this user can read."""
    command = [str(bin_dir() / "psql"), "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1",
               f"host=127.0.0.1 port={port} user=postgres dbname=postgres", "-f", "-"]
    return _run(command, "psql", input=sql, env={**os.environ, "PGPASSWORD": superuser_password}).stdout.strip()


def start(root: Path, superuser_password: str, role_password: str) -> Cluster:
    """Start the cluster on a free 127.0.0.1 port, with ROLE and DATABASES created the first time."""
    data_dir = create_cluster_once(root, superuser_password)
    pg_ctl = str(bin_dir() / "pg_ctl")
    if subprocess.run(_as_owner([pg_ctl, "status", "-D", str(data_dir)]), capture_output=True).returncode == 0:
        stop(data_dir)  # left running by a server that was killed
    port = unused_port()
    log = root / "postgres.log"
    write_private(log, None, owner=OWNER if os.geteuid() == 0 else None)
    options = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories=''"
    # Its own session: a Ctrl-C in the server's terminal reaches the server, which stops the database in order.
    _run(_as_owner([pg_ctl, "start", "-D", str(data_dir), "-l", str(log), "-w", "-t", "60", "-o", options]),
         f"starting the cluster (see {log})", start_new_session=True)
    if not _psql(port, superuser_password, f"SELECT 1 FROM pg_roles WHERE rolname = '{ROLE}'"):
        _psql(port, superuser_password, f"CREATE ROLE {ROLE} LOGIN PASSWORD '{role_password}'")
    for database in DATABASES:
        if not _psql(port, superuser_password, f"SELECT 1 FROM pg_database WHERE datname = '{database}'"):
            _psql(port, superuser_password, f"CREATE DATABASE {database} OWNER {ROLE}")
    return Cluster(data_dir, port, role_password)


def stop(data_dir: Path) -> None:
    """Fast shutdown (open connections are closed, nothing committed is lost); waits until it is down."""
    subprocess.run(_as_owner([str(bin_dir() / "pg_ctl"), "stop", "-D", str(data_dir), "-m", "fast", "-w",
                              "-t", "60"]), capture_output=True)
