"""Which training runs are repeats of one config: runs whose params agree on every key except the repeat keys
(seed, fold) and the bookkeeping keys (`skinexp.config.naming`'s one list) form a group. Keys are the union over the
compared runs; a key a run lacks counts as the value `(absent)`."""
from __future__ import annotations

from typing import Optional

from skinexp.config.naming import EXECUTION_KEYS, REPEAT_KEYS, is_bookkeeping

ABSENT = "(absent)"


def compared_key(key: str) -> bool:
    return key not in REPEAT_KEYS and not is_bookkeeping(key)


def group_runs(runs: list, group_by: Optional[list[str]] = None) -> dict[tuple, list]:
    """{group key: runs}, in the order the groups first appear. A group key is a tuple of (key, value) over
    `group_by`'s keys, else over every compared key of any of the runs."""
    keys = group_by if group_by else sorted({k for run in runs for k in run.data.params if compared_key(k)})
    groups: dict[tuple, list] = {}
    for run in runs:
        groups.setdefault(tuple((key, run.data.params.get(key, ABSENT)) for key in keys), []).append(run)
    return groups


def differing_keys(keys: list[tuple]) -> list[str]:
    """The keys whose values differ between groups: what names a group."""
    if not keys:
        return []
    names = [name for name, _ in keys[0]]
    return [name for index, name in enumerate(names) if len({key[index][1] for key in keys}) > 1]


def execution_only(keys: list[str]) -> bool:
    """Whether groups that differ in `keys` differ only in how their runs executed."""
    return bool(keys) and all(key in EXECUTION_KEYS for key in keys)


def group_name(key: tuple, shown: list[str]) -> str:
    """`model.filters=16,optim.lr=0.001` from the differing keys; `all` when every run shares one config."""
    values = dict(key)
    return ",".join(f"{name}={values[name]}" for name in shown) or "all"
