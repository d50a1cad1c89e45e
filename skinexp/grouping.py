"""Which training runs are repeats of one config: runs whose params agree on everything except the seed, the
cross-validation fold and the run's naming and tracking keys form a group."""
from __future__ import annotations

from typing import Optional

# What varies between repeats of one config, or only says where and how a run was logged.
REPEAT_KEYS = ("train.seed", "dataset.fold")
_IGNORED_PREFIXES = ("tracking.", "resume", "rerun_of", "train.verbose", "train.sample_")


def _compared(key: str) -> bool:
    return key not in REPEAT_KEYS and not key.startswith(_IGNORED_PREFIXES)


def group_key(params: dict[str, str], group_by: Optional[list[str]] = None) -> tuple[tuple[str, str], ...]:
    """The (key, value) pairs that define a run's group: `group_by`'s keys, else every compared param."""
    keys = group_by if group_by else sorted(k for k in params if _compared(k))
    return tuple((key, params.get(key, "")) for key in keys)


def group_runs(runs: list, group_by: Optional[list[str]] = None) -> dict[tuple, list]:
    """{group key: runs}, in the order the groups first appear."""
    groups: dict[tuple, list] = {}
    for run in runs:
        groups.setdefault(group_key(run.data.params, group_by), []).append(run)
    return groups


def differing_keys(keys: list[tuple]) -> list[str]:
    """The keys whose values differ between groups: what names a group."""
    if not keys:
        return []
    names = [name for name, _ in keys[0]]
    return [name for index, name in enumerate(names) if len({key[index][1] for key in keys}) > 1]


def group_name(key: tuple, shown: list[str]) -> str:
    """`model.filters=16,optim.lr=0.001` from the differing keys; `all` when every run shares one config."""
    values = dict(key)
    return ",".join(f"{name}={values[name]}" for name in shown) or "all"
