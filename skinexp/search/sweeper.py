"""The Optuna sweeper: asks the study for trials, launches each as a Hydra job on the configured launcher, and
makes sure every trial ends (its job tells COMPLETE or PRUNED; one that could not is told FAIL here).

With `n_jobs > 1` on a launcher that runs jobs elsewhere (joblib, submitit, Slurm), each trial is its own launch
in a thread, and a new trial starts as soon as any one ends: trials never wait for a batch. The basic launcher
runs jobs in this process, one at a time.

An interrupt (Ctrl-C, SIGTERM) ends the trials in flight FAIL and leaves every finished one in the study; the
entry point prints the one line and exits 130 or 143, and the same command again continues the study.
"""
from __future__ import annotations

import math
import os
import sys
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, Optional

from hydra.plugins.sweeper import Sweeper

from skinexp.errors import ConfigError


def search_can_run(config) -> bool:
    """False for an Optuna search that the sweeper will refuse (bad counts, search space or storage): the sweep's
    callback, which Hydra calls before it sets the sweeper up, then opens no parent run; the sweeper's setup
    raises the one-line error. True for any other sweep."""
    from skinexp.errors import SkinexpError
    from skinexp.search.config import SWEEPER_TARGET

    sweeper_cfg = config.hydra.sweeper
    if sweeper_cfg.get("_target_") != SWEEPER_TARGET:
        return True
    search = OptunaSearch(sweeper_cfg.n_trials, sweeper_cfg.n_jobs, sweeper_cfg.sampler, sweeper_cfg.pruner,
                          sweeper_cfg.storage, sweeper_cfg.study_name, sweeper_cfg.params)
    try:
        search.setup(hydra_context=None, task_function=None, config=config, launcher=False)
    except SkinexpError:
        return False
    return True


class OptunaSearch(Sweeper):
    """`hydra.sweeper` for `hparams_search=optuna`; its keys are `skinexp.search.config.OptunaSweeperConf`."""

    def __init__(self, n_trials: int, n_jobs: int, sampler: Any, pruner: Any, storage: Optional[str],
                 study_name: str, params: Optional[dict]) -> None:
        self.n_trials, self.n_jobs, self.sampler_cfg, self.pruner = n_trials, n_jobs, sampler, pruner
        self.storage, self.study_name, self.params = storage, study_name, dict(params or {})
        self.job_idx = 0

    def setup(self, *, hydra_context, task_function, config, launcher: bool = True) -> None:
        """Everything that can refuse the search does so here (and, through `check_search`, before the sweep's
        parent run), before any trial."""
        from hydra.core.plugins import Plugins

        from skinexp.search.space import parse_space
        from skinexp.search.study import storage_location

        for key, value in (("n_trials", self.n_trials), ("n_jobs", self.n_jobs)):
            if value < 1:
                raise ConfigError(f"hydra.sweeper.{key} must be at least 1. Received: hydra.sweeper.{key}={value}")
        self.config = config
        self.space = parse_space(self.params, list(config.hydra.overrides.task))
        self.epochs = int(config.train.epochs)
        self.location = storage_location(self.storage, Path(config.hydra.runtime.cwd))
        self.backend, self.study = self._open_study()
        if launcher:
            self.launcher = Plugins.instance().instantiate_launcher(config=config, hydra_context=hydra_context,
                                                                    task_function=task_function)

    def _open_study(self):
        """The storage and the study in it (created, or continued with its trials)."""
        import optuna

        from skinexp.search.config import SamplerName
        from skinexp.search.interrupts import signals_held
        from skinexp.search.study import build_pruner, open_storage

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        backend = open_storage(self.location)
        with signals_held():
            study = optuna.create_study(storage=backend, study_name=self.study_name, direction="maximize",
                                        pruner=build_pruner(self.pruner, self.epochs), load_if_exists=True)
        if study.direction != optuna.study.StudyDirection.MAXIMIZE:
            raise ConfigError(f"study {self.study_name} minimises; skinexp's trials are maximised. "
                              f"Received: hydra.sweeper.study_name={self.study_name}")
        seed = self.sampler_cfg.seed
        seed = None if seed is None else seed + len(study.trials)  # a continued study draws new points
        samplers = {SamplerName.tpe: lambda: optuna.samplers.TPESampler(seed=seed),
                    SamplerName.random: lambda: optuna.samplers.RandomSampler(seed=seed)}
        study.sampler = samplers[SamplerName(str(self.sampler_cfg.name))]()
        return backend, study

    def sweep(self, arguments: list[str]) -> None:
        from skinexp.search.interrupts import sigterm_raises
        from skinexp.search.study import shown_location

        earlier = len(self.study.trials)
        print(f"skinexp: Optuna study {self.study_name} at {shown_location(self.location)}: {earlier} earlier "
              f"trials, {self.n_trials} new, {self.n_jobs} at once, pruner {self.pruner}", flush=True)
        self._tag_parent_run()
        if self.n_jobs > 1 and type(self.launcher).__name__ == "BasicLauncher":
            print("skinexp: the basic launcher runs trials one at a time in this process; for "
                  f"hydra.sweeper.n_jobs={self.n_jobs} at once choose hydra/launcher=joblib or local_processes",
                  flush=True)
        with sigterm_raises():
            try:
                if self.n_jobs > 1 and type(self.launcher).__name__ != "BasicLauncher":
                    self._run_in_parallel()
                else:
                    self._run_in_turn()
            except KeyboardInterrupt as interrupt:  # Terminated too
                self._explain(interrupt)
                raise
        self._report()

    def _tag_parent_run(self) -> None:
        from skinexp import tracking
        from skinexp.search.study import shown_location

        parent = os.environ.get(tracking.PARENT_RUN_ENV)
        if parent:
            tracking.log_run_tag(parent, "optuna_storage", shown_location(self.location))
            tracking.log_run_tag(parent, "optuna_study", self.study_name)

    def _ask(self):
        """A new trial with its values drawn, and the overrides of its job."""
        from skinexp.search.interrupts import signals_held
        from skinexp.search.study import TrialLink

        with signals_held():
            trial = self.study.ask(fixed_distributions=self.space.dimensions)
        link = TrialLink(self.location, self.study_name, trial.number, self.pruner, self.epochs)
        return trial, [*self.space.trial_overrides(trial.params), *link.env_overrides()]

    def _launch(self, overrides: list[str], job_idx: int):
        (job_return,) = self.launcher.launch([overrides], initial_job_idx=job_idx)
        return job_return

    def _run_in_turn(self) -> None:
        for _ in range(self.n_trials):
            trial, overrides = self._ask()
            try:
                job_return = self._launch(overrides, self._next_job())
            except BaseException as error:
                self._end(trial, error)
                raise
            self._end(trial, job_return)

    def _run_in_parallel(self) -> None:
        """Up to `n_jobs` launches at once, each in a thread; the main thread asks and ends trials. On an interrupt
        the trials in flight end FAIL at once; their jobs, in other processes, stop at their next epoch's report
        (`TrialEnded`), and the process exits once their launches return."""
        asked, running = 0, {}
        pool = ThreadPoolExecutor(max_workers=self.n_jobs)
        try:
            while asked < self.n_trials or running:
                while asked < self.n_trials and len(running) < self.n_jobs:
                    trial, overrides = self._ask()
                    running[pool.submit(self._launch, overrides, self._next_job())] = trial
                    asked += 1
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    trial = running.pop(future)
                    self._end(trial, future.result() if future.exception() is None else future.exception())
        except BaseException as error:
            for trial in running.values():
                self._end(trial, error)
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()

    def _next_job(self) -> int:
        self.job_idx += 1
        return self.job_idx - 1

    def _end(self, trial, job_return) -> None:
        """A trial its job did not tell (it failed, died or was interrupted) is told FAIL. `job_return` is Hydra's
        JobReturn, or the exception its launch raised; an interrupt is said once, by the entry point."""
        import optuna

        from skinexp.search.interrupts import signals_held
        from skinexp.search.study import trial_id

        if self.backend.get_trial(trial_id(self.backend, self.study_name, trial.number)).state.is_finished():
            return
        value = getattr(job_return, "_return_value", None)
        reason = value if isinstance(value, BaseException) else job_return
        if not isinstance(reason, KeyboardInterrupt):
            print(f"skinexp: trial {trial.number} failed"
                  + (f": {type(reason).__name__}: {reason}" if isinstance(reason, BaseException) else ""),
                  file=sys.stderr, flush=True)
        with signals_held():
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)

    def _explain(self, interrupt: KeyboardInterrupt) -> None:
        """What the entry point's one line adds for an interrupted search: the study keeps its finished trials and
        the same command continues it (a trial's run is not resumed: its trial is FAIL)."""
        import optuna

        trials = self.study.get_trials(deepcopy=False)
        kept = sum(t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) for t in trials)
        interrupt.resumable = False
        interrupt.next_step = (f"study {self.study_name} keeps its {kept} finished trials; the same command again "
                               f"continues it")

    def _report(self) -> None:
        import optuna

        trials = self.study.get_trials(deepcopy=False)
        counts = {state: sum(t.state == state for t in trials) for state in optuna.trial.TrialState}
        summary = ", ".join(f"{n} {state.name.lower()}" for state, n in counts.items() if n)
        completed = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE and not math.isnan(t.value)]
        line = f"skinexp: study {self.study_name}: {len(trials)} trials ({summary})"
        if completed:
            best = self.study.best_trial
            line += (f"; best: trial {best.number}, val_image_iou {best.value:.4f}, "
                     + " ".join(f"{k}={v}" for k, v in best.params.items()))
        print(line, flush=True)

