"""Hyperparameter search: a Hydra sweeper on Optuna 4 (ask and tell), a persistent study, pruning from inside
training.

- `config`: the sweeper's schema (`hydra/sweeper=optuna`) and its choices.
- `space`: `hydra.sweeper.params` and command-line search dimensions as Optuna distributions.
- `study`: where the study lives (storage), the pruner, and the link a trial's job uses to report to it.
- `interrupts`: SIGINT and SIGTERM raise anywhere in a search, never inside a write to the study.
- `sweeper`: the sweeper itself (Hydra finds it as `hydra_plugins.skinexp_search.OptunaSweeper`).
"""
