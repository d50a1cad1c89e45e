"""Registered models: `register` (a run's model as a new version with an alias), `resolve` (`models:/name@alias`
and `models:/name/version` to a loadable model) and `serve` (the REST endpoint command). The `segmenter` pyfunc and
the endpoint's ASGI app import MLflow, so they live in `skinexp.tracking` (`segmenter`, `endpoint`)."""
