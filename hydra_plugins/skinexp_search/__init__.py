"""The name Hydra's plugin scan finds skinexp's Optuna sweeper under (plugins must live in `hydra_plugins`);
the sweeper itself is `skinexp.search.sweeper`. Importing this is cheap: Hydra scans plugins at every start."""
from skinexp.search import sweeper as _sweeper


class OptunaSweeper(_sweeper.OptunaSearch):
    """Optuna 4 ask-and-tell, a persistent study, pruning from inside training (`hparams_search=optuna`)."""
