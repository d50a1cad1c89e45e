"""The command line: `commands` maps each command to its handler; `hydra_app` runs the Hydra commands (train,
evaluate, predict, rerun) with Hydra's own options; `jobs` is what each Hydra job does; `options` parses the
`key=value` options of the commands without a Hydra config; `runs` is `python -m skinexp runs --stale`.
The one error boundary is `skinexp.__main__`."""
