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
    from skinexp.search.config import register_sweeper

    register_schemas()
    register_sweeper()
    if not OmegaConf.has_resolver("skinexp_pid"):
        # The pid keeps two jobs started in the same second in different output directories; cached so that
        # launcher workers (joblib, Ray) resolve the sweep directory to the launching process's pid.
        OmegaConf.register_new_resolver("skinexp_pid", lambda: str(os.getpid()), use_cache=True)


def one_line(error: BaseException) -> str:
    """A Hydra or OmegaConf error as one line: its message joined with its cause, without OmegaConf's residue."""
    parts = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    cause = error.__cause__
    if cause is not None:
        parts += [line.strip() for line in str(cause).strip().splitlines()[:1] if line.strip()]
    return "; ".join(dict.fromkeys(p for p in parts if not p.startswith(_RESIDUE)))


def explain(error: BaseException, config_name: str, overrides: list[str]) -> str:
    """A composition error as the house's one line (`... Received: <override>`), from what Hydra's and OmegaConf's
    exceptions carry (the key, the value, the schema's type, a group's options): an unknown key with the closest
    key, a value of the wrong type or outside an Enum's choices, a group option that does not exist, an override
    that does not parse; anything else as Hydra's message on one line."""
    from hydra.errors import MissingConfigException, OverrideParseException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ValidationError

    by_key = {override.lstrip("+~").partition("=")[0]: override for override in overrides}
    cause = error.__cause__
    if isinstance(cause, (ConfigAttributeError, ConfigKeyError)) and cause.full_key:
        # OmegaConf names the first missing level (trian of trian.epochs): the override names the whole key
        key = next((k for k in by_key if k == cause.full_key or k.startswith(f"{cause.full_key}.")), cause.full_key)
        close = _closest_keys(key, config_name)
        hint = f"; did you mean {close[0]}?" if close else ""
        return f"{key} is not a config key{hint} Received: {by_key.get(key, key)}"
    if isinstance(cause, ValidationError) and cause.full_key:
        key = cause.full_key.partition("[")[0]  # model.widths[1]: an element of the list model.widths
        return f"{key} must be {_kind(cause)}. Received: {by_key.get(key, f'{key}={cause.value}')}"
    if isinstance(error, MissingConfigException) and error.options and error.missing_cfg_file:
        group, _, option = error.missing_cfg_file.rpartition("/")
        return (f"{group} has no option {option}; choose one of {', '.join(error.options)}. "
                f"Received: {by_key.get(group, f'{group}={option}')}")
    if isinstance(error, OverrideParseException):
        return (f"an override does not parse: quote a value that holds '=', spaces or brackets (key='a=b'). "
                f"Received: {error.override}")
    return one_line(error)


def _kind(error) -> str:
    """What the schema's field behind an OmegaConf ValidationError takes, in words."""
    import dataclasses
    import enum
    import typing

    def words(kind) -> str:
        if isinstance(kind, type) and issubclass(kind, enum.Enum):
            return f"one of {', '.join(member.name for member in kind)}"
        return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(kind, str(kind))

    field_name = error.full_key.rpartition(".")[2].partition("[")[0]
    owner = error.object_type if error.object_type is not list else None
    hint = typing.get_type_hints(owner).get(field_name) if dataclasses.is_dataclass(owner) else error.ref_type
    hint = next((arg for arg in typing.get_args(hint) if arg is not type(None)), hint) \
        if typing.get_origin(hint) is typing.Union else hint
    if typing.get_origin(hint) in (list, list):
        element = words(typing.get_args(hint)[0])
        plurals = {"an integer": "a list of integers", "a number": "a list of numbers"}
        return plurals.get(element, f"a list of {element}")
    return words(hint)


def _closest_keys(key: str, config_name: str) -> list[str]:
    """The config's dotted key nearest to `key` by edit distance, if any is near."""
    import difflib

    from omegaconf import OmegaConf

    try:
        cfg = compose(config_name, [])
    except ConfigError:
        return []
    keys: list[str] = []

    def walk(node, prefix: str) -> None:
        for name in node:
            value = node[name] if OmegaConf.is_dict(node) else None
            keys.append(prefix + name)
            if OmegaConf.is_dict(value):
                walk(value, f"{prefix}{name}.")

    walk(cfg, "")
    return difflib.get_close_matches(key, keys, n=1, cutoff=0.6)


def composition_errors() -> tuple[type[BaseException], ...]:
    """What Hydra and OmegaConf raise for a config that does not compose."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    return HydraException, OmegaConfBaseException


def _refuse_dataset_keys_without_a_dataset(config_name: str, overrides: list[str]) -> None:
    """evaluate and predict use the run's own dataset unless `dataset=` names one: a `dataset.*` key alone has
    nothing to set (OmegaConf would fail with an assertion)."""
    if config_name not in ("evaluate", "predict") or any(o.lstrip("+~").startswith("dataset=") for o in overrides):
        return
    keyed = next((o for o in overrides if o.lstrip("+~").startswith("dataset.")), None)
    if keyed is not None:
        raise ConfigError(f"{keyed.partition('=')[0]} needs dataset= (folder, npy, ...): {config_name} uses the "
                          f"run's own dataset unless dataset= names another. Received: {keyed}")


def compose(config_name: str, overrides: list[str]):
    """The config `python -m skinexp <command> OVERRIDES` would run with (no Hydra run, no output folder).

    Raises:
        ConfigError: one line naming the override and what was wrong with it.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    register()
    _refuse_dataset_keys_without_a_dataset(config_name, overrides)
    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            return hydra_compose(config_name=config_name, overrides=list(overrides))
    except composition_errors() as error:
        raise ConfigError(explain(error, config_name, list(overrides))) from None
