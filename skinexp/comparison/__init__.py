"""Comparing configs: `grouping` (which runs are repeats of one config), `statistics` (intervals, paired
differences, tests), `table` (the comparison on one per-image score), `leaderboard` (a sweep's jobs),
`report` (the HTML page), `command` (`python -m skinexp compare`)."""
