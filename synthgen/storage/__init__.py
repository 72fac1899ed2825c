"""Where a run's output lives and how it is laid out."""
