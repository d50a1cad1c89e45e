"""The Optuna sweeper's config (`hydra/sweeper=optuna`, set by `hparams_search=optuna`): a schema whose Enums
refuse a bad sampler or pruner at composition, before any trial."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from skinexp.config.schema import Choice

SWEEPER_TARGET = "hydra_plugins.skinexp_search.OptunaSweeper"


class SamplerName(Choice):
    tpe = "tpe"
    random = "random"


class PrunerName(Choice):
    hyperband = "hyperband"  # successive halving over brackets; epochs are the resource
    median = "median"  # prune below the median of earlier trials at the same epoch
    none = "none"


@dataclass
class SamplerConf:
    name: SamplerName = SamplerName.tpe
    seed: Optional[int] = 42  # offset by the study's trial count, so a continued study draws new points


@dataclass
class OptunaSweeperConf:
    """`hydra.sweeper.*` for `hparams_search=optuna`.

    Args:
        n_trials: new trials this command runs (a continued study keeps its earlier ones).
        n_jobs: trials in flight at once; each runs as its own launch on the configured launcher.
        sampler: `name` (tpe, random) and `seed`.
        pruner: hyperband, median or none; trials report `val_iou` after every epoch.
        storage: null (a journal file `runs/optuna.journal` under the working directory), a file path (a
            journal file), or an RDB URL (`sqlite:///...`, `postgresql://user@host/db`) without a password
            (libpq reads PGPASSWORD or ~/.pgpass; a URL with one is refused).
        study_name: the study to create or continue.
        params: the search space, `key: <Hydra sweep syntax>` (`tag(log, interval(1e-4, 3e-3))`,
            `choice(8, 16)`, `range(1, 5)`); a search dimension on the command line replaces the same key here.
    """

    _target_: str = SWEEPER_TARGET
    n_trials: int = 12
    n_jobs: int = 1
    sampler: SamplerConf = field(default_factory=SamplerConf)
    pruner: PrunerName = PrunerName.hyperband
    storage: Optional[str] = None
    study_name: str = "skinexp"
    params: dict[str, str] = field(default_factory=dict)


def register_sweeper() -> None:
    """`hydra/sweeper=optuna` in Hydra's ConfigStore (replacing hydra-optuna-sweeper's, if that is installed)."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(group="hydra/sweeper", name="optuna", node=OptunaSweeperConf, provider="skinexp")
