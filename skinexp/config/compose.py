"""Finding the configs and composing them as the command line does (for up-front checks and for tests)."""
from __future__ import annotations

import os
from pathlib import Path

from skinexp.errors import ConfigError

_RESIDUE = ("full_key", "object_type", "reference_type")


def conf_dir() -> Path:
    """The packaged configs (a wheel install) or the repo's conf/ (a source or editable install)."""
    package = Path(__file__).resolve().parent.parent
    packaged = package / "conf"
    return packaged if packaged.is_dir() else package.parent / "conf"


def register() -> None:
    """The schemas and the resolvers the YAML files use; safe to call more than once."""
    from omegaconf import OmegaConf

    from skinexp.config.schema import register_schemas

    register_schemas()
    if not OmegaConf.has_resolver("skinexp_pid"):
        # The pid keeps two jobs started in the same second in different output directories; cached so that
        # launcher workers (joblib, Ray) resolve the sweep directory to the launching process's pid.
        OmegaConf.register_new_resolver("skinexp_pid", lambda: str(os.getpid()), use_cache=True)
    if not OmegaConf.has_resolver("skinexp_or"):
        OmegaConf.register_new_resolver("skinexp_or", lambda value, default: default if value is None else value)


def one_line(error: BaseException) -> str:
    """A Hydra or OmegaConf error as one line: its message joined with its cause, without OmegaConf's residue."""
    parts = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    cause = error.__cause__
    if cause is not None:
        parts += [line.strip() for line in str(cause).strip().splitlines()[:1] if line.strip()]
    return "; ".join(dict.fromkeys(p for p in parts if not p.startswith(_RESIDUE)))


def composition_errors() -> tuple[type[BaseException], ...]:
    """What Hydra and OmegaConf raise for a config that does not compose."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    return HydraException, OmegaConfBaseException


def compose(config_name: str, overrides: list[str]):
    """The config `python -m skinexp <command> OVERRIDES` would run with (no Hydra run, no output folder).

    Raises:
        ConfigError: one line naming the override and what was wrong with it.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    register()
    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            return hydra_compose(config_name=config_name, overrides=list(overrides))
    except composition_errors() as error:
        raise ConfigError(one_line(error)) from None
