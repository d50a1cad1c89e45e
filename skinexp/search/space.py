"""The search space: `hydra.sweeper.params` and command-line overrides in Hydra's sweep syntax, as Optuna
distributions, and a trial's values back as overrides.

`interval(a, b)` is a uniform float (an int one when both ends are ints), `tag(log, interval(a, b))` log-uniform;
`choice(...)` and `shuffle(...)` are categorical; `range(start, stop[, step])` takes `start`, `start + step`, ...
below `stop`, as Hydra's range does. A command-line override of a key replaces the config's: a search dimension
its dimension, a plain value fixes the key.
"""
from __future__ import annotations

from dataclasses import dataclass

from skinexp.errors import ConfigError


@dataclass
class SearchSpace:
    dimensions: dict  # key -> optuna distribution, in the order they were given
    fixed: list[str]  # the other command-line overrides, passed to every trial as given

    def trial_overrides(self, values: dict) -> list[str]:
        """The overrides of one trial: the fixed ones, then `key=value` for every dimension."""
        return [*self.fixed, *(f"{key}={values[key]}" for key in self.dimensions)]


def parse_space(params: dict[str, str], arguments: list[str]) -> SearchSpace:
    """The dimensions of `params` (`key: sweep syntax`), replaced or fixed by the command line's `arguments`.

    Raises:
        ConfigError: a dimension Optuna cannot sample (a list sweep `a,b`, an empty choice).
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    dimensions: dict = {}
    for key, value in params.items():
        try:
            override = parser.parse_override(f"{key}={value}")
        except HydraException as error:
            reason = str(error).splitlines()[1:2] or [str(error)]
            raise ConfigError(f"hydra.sweeper.params.{key} does not parse: {reason[0].strip()}. "
                              f"Received: {key}={value}") from None
        dimensions[str(key)] = _distribution(override)
    fixed = []
    for override in parser.parse_overrides(list(arguments)):
        key = override.get_key_element()
        if override.is_sweep_override():
            dimensions.pop(key, None)  # keep the command line's order after the config's
            dimensions[key] = _distribution(override)
        else:
            dimensions.pop(key, None)
            fixed.append(override.input_line)
    return SearchSpace(dimensions, fixed)


def _distribution(override):
    from hydra.core.override_parser.types import Transformer
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    line = override.input_line
    if not override.is_sweep_override():
        raise ConfigError(f"hydra.sweeper.params takes a search dimension (interval, choice, range). "
                          f"Received: {line}")
    value = override.value()
    if override.is_interval_sweep():
        log = "log" in value.tags
        if isinstance(value.start, int) and isinstance(value.end, int):
            return IntDistribution(value.start, value.end, log=log)
        if log and value.start <= 0:
            raise ConfigError(f"a log interval must start above 0. Received: {line}")
        return FloatDistribution(float(value.start), float(value.end), log=log)
    if override.is_range_sweep() and not value.shuffle:
        values = list(override.sweep_iterator())
        if not values:
            raise ConfigError(f"a range must hold at least one value. Received: {line}")
        if all(isinstance(v, int) for v in values):
            return IntDistribution(values[0], values[-1], step=int(value.step))
        return FloatDistribution(float(values[0]), float(values[-1]), step=float(value.step))
    if override.is_choice_sweep() and _is_list_sweep(override):
        raise ConfigError(f"Optuna samples interval(...), choice(...) and range(...), not a list of values; write "
                          f"choice(a, b) instead of a,b. Received: {line}")
    choices = list(override.sweep_iterator(transformer=Transformer.encode))  # a choice or a shuffled range
    if not choices:
        raise ConfigError(f"a choice must hold at least one value. Received: {line}")
    return CategoricalDistribution(choices)


def _is_list_sweep(override) -> bool:
    """`a,b` (a simple sweep: a grid, not a search dimension) rather than `choice(a, b)`."""
    return getattr(override.value(), "simple_form", False)
