"""Evaluation and prediction: `scores` (NumPy per-image scores), `postprocess`, `inference` (loading a trained model,
images to probabilities), `evaluate`, `predict`, `ensemble` (fold ensembles) and `figures` (masks and curves)."""
