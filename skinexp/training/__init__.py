"""Training's parts beyond the loop in `skinexp.train`: budgets (minutes, GFLOP or steps) resolved into steps."""
