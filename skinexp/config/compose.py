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
    """A composition error as the house's one line (`... Received: <override>`): an unknown key with the closest
    keys, a bad choice or group option with the allowed ones; anything else as Hydra's message on one line."""
    import re

    text = "\n".join([str(error), str(error.__cause__ or "")])
    by_key = {override.lstrip("+~").partition("=")[0]: override for override in overrides}
    unknown = re.search(r"Could not override '([^']+)'", text)
    if unknown and "not in" in text:
        key = unknown.group(1)
        close = _closest_keys(key, config_name)
        hint = f"; did you mean {close[0]}?" if close else ""
        return f"{key} is not a config key{hint} Received: {by_key.get(key, key)}"
    choice = re.search(r"Error merging override (\S+)", text)
    allowed = re.search(r"Invalid value '[^']*', expected one of \[([^\]]*)\]", text)
    if choice and allowed:
        key = choice.group(1).lstrip("+~").partition("=")[0]
        return f"{key} must be one of {allowed.group(1)}. Received: {choice.group(1)}"
    converted = re.search(r"could not be converted to (\w+)|is not a valid (bool)|is not a (ListConfig)", text)
    if choice and converted:
        key, _, value = choice.group(1).lstrip("+~").partition("=")
        kind = {"Integer": "an integer", "Float": "a number", "Boolean": "true or false", "bool": "true or false",
                "ListConfig": "a list, e.g. [8,16,32]"}.get(next(filter(None, converted.groups())), converted.group(0))
        if value.startswith("["):  # an element of a list
            kind = {"an integer": "a list of integers", "a number": "a list of numbers"}.get(kind, kind)
        return f"{key} must be {kind}. Received: {choice.group(1)}"
    option = re.search(r"Could not find '([^'/]+(?:/[^'/]+)*)/([^'/]+)'", text)
    options = re.search(r"Available options in '[^']+':\s*\n((?:\s+\S+\n?)+)", text)
    if option and options:
        group, names = option.group(1), ", ".join(options.group(1).split())
        return (f"{group} has no option {option.group(2)}; choose one of {names}. "
                f"Received: {by_key.get(group, f'{group}={option.group(2)}')}")
    if "mismatched input" in text or "extraneous input" in text or "no viable alternative" in text:
        return (f"an override does not parse: quote a value that holds '=', spaces or brackets (key='a=b'). "
                f"Received: {' '.join(overrides)}")
    return one_line(error)


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
