"""The network and what trains it: `unet` (the builder), `deep_supervision` (auxiliary heads in training),
`flops` (FLOPs per image), `losses`, `metrics` (Keras training metrics) and `optim` (optimizers, schedules)."""
