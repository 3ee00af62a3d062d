"""The "probability filter" claim, tested: SHA-256 round states, sweeps, statistics, windows."""
