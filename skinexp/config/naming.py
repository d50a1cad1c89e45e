"""MLflow run names built from the command-line overrides: short, about what changes the model or the training.

The full overrides stay in the run's `hydra_overrides` tag and its params.
"""
from __future__ import annotations

MAX_LENGTH = 50
# The one list of keys that are not a config, shared by run names, comparison groups and leaderboards.
# Bookkeeping: where things are logged or kept, how verbosely, which run to continue, and what a run derived
# from its config (the steps a budget resolved to, FLOPs per image, the budget probe's timings).
BOOKKEEPING_PREFIXES = ("hydra", "tracking.", "hparams_search", "resume", "rerun_of", "train.verbose",
                        "train.sample_", "dataset.cache", "dataset.root", "dataset=", "train.budget_kind",
                        "training_gflop_per_image", "budget_probe_")
DERIVED_KEYS = ("train.steps", "train.budget_plan", "train.budget.plan", "threshold")  # exact:
# train.steps_per_execution is a key of its own; the plan a minutes budget's clock revised (a rerun's config carries
# it); threshold: the tuned threshold the logged model carries
# Repeats of one config: named in a run's name, pooled within a comparison group.
REPEAT_KEYS = ("train.seed", "dataset.fold")
# How a run executed, not what it learned: groups that differ only here get a warning.
EXECUTION_KEYS = ("train.backend", "train.jit_compile", "train.steps_per_execution", "train.pin_gpu",
                  "train.strategy", "train.deterministic")


def is_bookkeeping(key: str) -> bool:
    key = key.lstrip("+~")
    return key.startswith(BOOKKEEPING_PREFIXES) or key.partition("=")[0] in DERIVED_KEYS


def override_key(override: str) -> str:
    """`+model.filters=8` -> `model.filters`."""
    return override.lstrip("+~").partition("=")[0]


def _value(value: str) -> str:
    if "/" in value.rstrip("/"):  # a path: its last folder
        return value.rstrip("/").rsplit("/", 1)[-1]
    if any(c in value for c in ".eE"):
        try:
            return format(float(value), ".4g")
        except ValueError:
            pass
    return value


def run_name_from(overrides: list[str]) -> str:
    """`model.filters=64 optim.lr=1e-4` -> `filters=64,lr=0.0001`; no overrides that name a run -> `default`.

    Keys are shown by their last part, paths by their last folder; a name stops before MAX_LENGTH characters,
    ending in `,+N` for the N overrides left out.
    """
    parts = []
    for override in overrides:
        key, _, value = override.lstrip("+~").partition("=")
        if is_bookkeeping(override):
            continue
        parts.append(f"{key.split('.')[-1].split('/')[-1]}={_value(value)}")
    name = ""
    for count, part in enumerate(parts):
        candidate = f"{name},{part}" if name else part
        rest = len(parts) - count - 1
        if len(candidate) + (len(f",+{rest}") if rest else 0) > MAX_LENGTH and name:
            return f"{name},+{len(parts) - count}"
        name = candidate
    return name or "default"


def job_run_name(explicit: str | None, overrides: list[str], swept_keys: list[str]) -> str:
    """`tracking.run_name` when set; sweep children are named from the swept keys only (`filters=8,lr=0.001`)."""
    if explicit:
        return explicit
    if swept_keys:
        overrides = [o for o in overrides if override_key(o) in swept_keys]
    return run_name_from(overrides)
