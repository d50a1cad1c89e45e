"""Configs: `schema` (typed dataclasses and the choice Enums, registered in Hydra's ConfigStore), `checks`
(what a type cannot rule out, per section) and `compose` (finding `conf/` and composing it like the CLI)."""
