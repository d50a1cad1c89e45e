"""MLflow run names built from the command-line overrides."""
from __future__ import annotations

_HIDDEN_FROM_NAMES = ("hydra", "tracking.", "+hydra", "hparams_search")


def override_key(override: str) -> str:
    """`+model.filters=8` -> `model.filters`."""
    return override.lstrip("+~").partition("=")[0]


def run_name_from(overrides: list[str]) -> str:
    """`model.filters=64 optim.lr=1e-4` -> `filters=64,lr=0.0001`; no overrides -> `default`."""
    parts = []
    for override in overrides:
        key, _, value = override.lstrip("+~").partition("=")
        if key.startswith(_HIDDEN_FROM_NAMES):
            continue
        if any(c in value for c in ".eE"):
            try:
                value = format(float(value), ".4g")
            except ValueError:
                pass
        parts.append(f"{key.split('.')[-1].split('/')[-1]}={value}")
    return ",".join(parts) or "default"


def job_run_name(explicit: str | None, overrides: list[str], swept_keys: list[str]) -> str:
    """`tracking.run_name` when set; sweep children are named from the swept keys only (`filters=8,lr=0.001`)."""
    if explicit:
        return explicit
    if swept_keys:
        overrides = [o for o in overrides if override_key(o) in swept_keys]
    return run_name_from(overrides)
