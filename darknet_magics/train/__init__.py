"""Training: a run's plan, its start, watch and finish in the foreground, and background runs under a keeper."""
