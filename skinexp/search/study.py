"""Where a search's study lives, how it prunes, and how a trial's job reports to it.

The sweeper asks the study for a trial and hands its job a `TrialLink` through the job's environment
(`hydra.job.env_set`, so it reaches the job on any launcher: in process, joblib, submitit, Slurm). The job opens
the study itself, reports `val_iou` after every epoch, and tells the study its end: COMPLETE with the run's
`val_image_iou`, or PRUNED. A trial the job could not tell (it failed or died) the sweeper tells FAIL.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from skinexp.errors import ConfigError, TrialEnded
from skinexp.search.config import PrunerName

DEFAULT_STORAGE = "runs/optuna.journal"  # a journal file: Optuna appends to it from several processes
RDB_SCHEMES = ("sqlite", "postgresql", "mysql", "oracle", "mssql")
PRUNED_TAG, PRUNED_AT_TAG, TRIAL_TAG = "pruned", "pruned_at_epoch", "optuna_trial"
REPORTED_METRIC = "val_iou"  # Keras' per-epoch proxy of the trial's value (the kept checkpoint's val_image_iou)

_ENV = {"storage": "SKINEXP_OPTUNA_STORAGE", "study": "SKINEXP_OPTUNA_STUDY", "number": "SKINEXP_OPTUNA_TRIAL",
        "pruner": "SKINEXP_OPTUNA_PRUNER", "epochs": "SKINEXP_OPTUNA_EPOCHS"}


def storage_location(storage: Optional[str], base_dir: Path) -> str:
    """`hydra.sweeper.storage` as the study's address: an RDB URL as given, a file path (default
    `runs/optuna.journal`) made absolute against `base_dir` (where the user ran from).

    Raises:
        ConfigError: a URL with a password. It would sit on the command line (`ps` shows it to every local account)
            and travel to every trial's job; libpq reads it from PGPASSWORD or ~/.pgpass instead.
    """
    from urllib.parse import urlsplit

    from skinexp.config.checks import redact_uri

    location = storage or DEFAULT_STORAGE
    if "://" in location:
        try:
            password = urlsplit(location).password
        except ValueError:  # a malformed port: open_storage says what is wrong
            password = None
        if password is not None:
            raise ConfigError("hydra.sweeper.storage must not carry its password on the command line (`ps` shows "
                              "it to every local account, and every trial's job would get it); put the password in "
                              "PGPASSWORD or ~/.pgpass, which libpq reads, and leave it out of the URL. "
                              f"Received: hydra.sweeper.storage={redact_uri(location)}")
        return location
    path = Path(location).expanduser()
    return str(path if path.is_absolute() else (base_dir / path).resolve())


def shown_location(location: str) -> str:
    """The address with any password hidden (for tags and the console)."""
    if "://" not in location:
        return location
    from sqlalchemy.engine import make_url

    try:
        return make_url(location).render_as_string(hide_password=True)
    except Exception:
        return location.split("://")[0] + "://..."


def open_storage(location: str):
    """An Optuna storage for `location`: RDBStorage for a URL, a JournalStorage over a file otherwise.

    Raises:
        ConfigError: a URL whose scheme no RDB knows, a database that cannot be reached, a file that cannot be
            created.
    """
    import optuna
    from optuna.storages.journal import JournalFileBackend

    key = f"hydra.sweeper.storage={shown_location(location)}"
    if "://" in location:
        scheme = location.split("://")[0].split("+")[0]
        if scheme not in RDB_SCHEMES:
            raise ConfigError(f"hydra.sweeper.storage must be a file path or a database URL "
                              f"({', '.join(RDB_SCHEMES)}). Received: {key}")
        try:
            return optuna.storages.RDBStorage(location, engine_kwargs={"pool_pre_ping": True})
        except ImportError:  # Optuna's, for SQLAlchemy's missing driver
            hint = "; psycopg comes with the `server` extra (make install-server)" if scheme == "postgresql" else ""
            raise ConfigError(f"no Python driver for {scheme} is installed{hint}. Received: {key}") from None
        except Exception as error:
            reason = str(error).strip().splitlines()[0].rstrip(".") if str(error).strip() else type(error).__name__
            raise ConfigError(f"the study's database cannot be opened: {reason[:300]}. Received: {key}") from None
    path = Path(location)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    except OSError as error:
        raise ConfigError(f"the study's journal file cannot be created: {error.strerror}. Received: {key}") from None


def build_pruner(name: PrunerName, epochs: int):
    """The pruner for trials of `epochs` epochs (the resource Hyperband shares out; it must match in the sweeper,
    whose sampler groups trials by Hyperband bracket, and in every job)."""
    import optuna

    pruners = {
        PrunerName.hyperband: lambda: optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(epochs, 1),
                                                                     reduction_factor=3),
        PrunerName.median: lambda: optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1),
        PrunerName.none: lambda: optuna.pruners.NopPruner(),
    }
    return pruners[PrunerName(str(name))]()


def trial_id(storage, study_name: str, number: int) -> int:
    """The storage's id of trial `number` of `study_name` (what `optuna.trial.Trial` takes and the storage's trial
    methods address), through `BaseStorage`'s public methods."""
    return storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(study_name), number)


@dataclass
class TrialLink:
    """What a job needs to report to its trial: the study's address and name, the trial's number, the pruner.

    `report` opens the study on first use; `pruned_at_epoch` is set once the pruner has said stop.
    """

    storage: str
    study: str
    number: int
    pruner: PrunerName
    epochs: int
    pruned_at_epoch: Optional[int] = None
    _trial: object = field(default=None, repr=False)
    _storage: object = field(default=None, repr=False)
    _trial_id: int = field(default=-1, repr=False)

    def env_overrides(self) -> list[str]:
        """The Hydra overrides that hand this link to the job's environment (`hydra.job.env_set`)."""
        values = {"storage": self.storage, "study": self.study, "number": self.number, "pruner": self.pruner,
                  "epochs": self.epochs}
        return [f"++hydra.job.env_set.{_ENV[key]}={_quoted(str(value))}" for key, value in values.items()]

    @classmethod
    def from_env(cls) -> Optional[TrialLink]:
        """The link the sweeper set for this job; None outside an Optuna search."""
        if _ENV["number"] not in os.environ:
            return None
        return cls(storage=os.environ[_ENV["storage"]], study=os.environ[_ENV["study"]],
                   number=int(os.environ[_ENV["number"]]), pruner=PrunerName(os.environ[_ENV["pruner"]]),
                   epochs=int(os.environ[_ENV["epochs"]]))

    def trial(self):
        """The running trial the sweeper asked for, opened (once) in this process."""
        import optuna

        if self._trial is None:
            self._storage = open_storage(self.storage)
            self._trial_id = trial_id(self._storage, self.study, self.number)
            study = optuna.Study(self.study, self._storage, pruner=build_pruner(self.pruner, self.epochs))
            # Optuna has no public call that reopens a trial another process asked for (ask() makes a new one);
            # Trial(study, trial_id) is the documented constructor that optimize() and ask() use themselves.
            self._trial = optuna.trial.Trial(study, self._trial_id)
        return self._trial

    def report(self, epoch: int, value: float) -> bool:
        """Report `value` at `epoch` (1-based); True when the pruner says this trial should stop.

        Raises:
            TrialEnded: the sweep has ended the trial meanwhile (interrupted, it failed the trials in flight).
        """
        from optuna.exceptions import UpdateFinishedTrialError

        from skinexp.search.interrupts import signals_held

        trial = self.trial()
        try:
            with signals_held():
                trial.report(float(value), epoch)
        except UpdateFinishedTrialError:
            state = self._storage.get_trial(self._trial_id).state.name
            raise TrialEnded(f"the sweep ended trial {self.number} of study {self.study} (it was interrupted); this "
                             f"job stops after epoch {epoch}. Received: trial {self.number} {state}") from None
        if self.pruned_at_epoch is None and trial.should_prune():
            self.pruned_at_epoch = epoch
        return self.pruned_at_epoch is not None

    def tell(self, value: float, run_id: str) -> None:
        """End the trial: PRUNED if the pruner stopped it (Optuna keeps its last reported value), else COMPLETE
        with `value`. The run's id and `value` stay on the trial as user attributes either way. A trial the sweeper
        has ended meanwhile (FAIL, after an interrupt) is left as it is."""
        import optuna

        from skinexp.search.interrupts import signals_held

        trial = self.trial()
        if self._storage.get_trial(self._trial_id).state.is_finished():
            return
        with signals_held():
            trial.set_user_attr("mlflow_run_id", run_id)
            trial.set_user_attr("val_image_iou", float(value))
            if self.pruned_at_epoch is not None:
                trial.set_user_attr(PRUNED_AT_TAG, self.pruned_at_epoch)
                trial.study.tell(self.number, state=optuna.trial.TrialState.PRUNED, skip_if_finished=True)
            else:
                trial.study.tell(self.number, float(value), skip_if_finished=True)

    def run_tags(self) -> dict[str, str]:
        return {TRIAL_TAG: str(self.number)}


def _quoted(value: str) -> str:
    """A value as a quoted Hydra override string (paths and URLs hold `:`, `/`, `@`, `=`)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
