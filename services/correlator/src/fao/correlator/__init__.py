"""The correlator: folds check results into per-monitor state and owns the incident lifecycle."""
