"""Training: `train` (one run from the composed config), `callbacks` (what each epoch logs), `runtime` (backend,
seeds, precision, threads: set once), `resume` (continuing and repeating logged runs), `budget` (minutes, GFLOP or
steps resolved into optimizer steps) and `sweeps` (a sweep's MLflow parent run)."""
