"""Users and permissions of a tracking server that runs MLflow's basic-auth app, through MLflow's own client
(`mlflow.server.auth.client.AuthServiceClient`). Credentials are the caller's MLFLOW_TRACKING_USERNAME / _PASSWORD,
an admin's for these calls."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import mlflow

import skinexp.tracking.retry as retry
from skinexp.errors import ConfigError, TrackingError

PERMISSIONS = ("READ", "USE", "EDIT", "MANAGE", "NO_PERMISSIONS")
EXPERIMENT = "experiment"  # MLflow's resource type for experiment grants


def _client(uri: str):
    import warnings

    with warnings.catch_warnings():  # MLflow's server modules warn about Starlette's deprecations on import
        warnings.simplefilter("ignore", DeprecationWarning)
        from mlflow.server.auth.client import AuthServiceClient

    retry.configure(uri, 0)  # a refused admin login becomes the one TrackingError line
    return AuthServiceClient(uri)


def _code(error: BaseException) -> str:
    return str(getattr(error, "error_code", ""))


def add_user(uri: str, username: str, password: str) -> None:
    """Create `username` (not an admin). TrackingError when the name is taken."""
    client = _client(uri)
    try:
        retry.call(client.create_user, username, password, what="creating a user")
    except mlflow.exceptions.MlflowException as error:
        if _code(error) == "RESOURCE_ALREADY_EXISTS":
            raise TrackingError(f"the tracking server at {uri} has a user of that name already. "
                                f"Received: {username}") from None
        raise TrackingError(f"the tracking server at {uri} did not create the user: "
                            f"{_first_line(error)}. Received: {username}") from None


def grant(uri: str, username: str, experiment: str, permission: str) -> str:
    """Give `username` `permission` on the experiment named `experiment` (created, tagged as skinexp's, if it does
    not exist yet), replacing an earlier grant; returns the experiment id."""
    from skinexp.tracking.store import DEFAULT_RETRY_SECONDS, prepare_store

    if permission not in PERMISSIONS:
        raise ConfigError(f"permission must be one of {', '.join(PERMISSIONS)}. Received: permission={permission}")
    _, experiment_id = prepare_store(SimpleNamespace(uri=uri, experiment=experiment, artifact_root="",
                                                     retry_seconds=DEFAULT_RETRY_SECONDS), Path.cwd())
    client = _client(uri)
    try:
        retry.call(client.get_user, username, what="reading users")
    except mlflow.exceptions.MlflowException:
        raise TrackingError(f"the tracking server at {uri} has no such user; add it first "
                            f"(python -m skinexp server user add {username}). Received: {username}") from None
    try:
        retry.call(client.grant_user_permission, username, EXPERIMENT, experiment_id, permission,
                   what="granting permissions")
    except mlflow.exceptions.MlflowException as error:
        if _code(error) != "RESOURCE_ALREADY_EXISTS":
            raise TrackingError(f"the tracking server at {uri} refused the grant: {_first_line(error)}. "
                                f"Received: permission={permission}") from None
        retry.call(client.revoke_user_permission, username, EXPERIMENT, experiment_id, what="revoking permissions")
        retry.call(client.grant_user_permission, username, EXPERIMENT, experiment_id, permission,
                   what="granting permissions")
    return experiment_id


def permission_of(uri: str, username: str, experiment_id: str) -> str:
    """The permission `username` has on the experiment, as the server resolves it (READ, EDIT, ...)."""
    return retry.call(_client(uri).get_user_permission, username, EXPERIMENT, experiment_id).permission


def is_admin(uri: str, username: str) -> bool:
    """Whether the server takes the caller's login and reports `username` as an admin."""
    return bool(retry.call(_client(uri).get_user, username, what="reading users").is_admin)


def _first_line(error: BaseException) -> str:
    text = getattr(error, "message", None) or str(error)
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__
