"""poolcheck's engine: load a pool, run it, observe it, judge it, report."""
