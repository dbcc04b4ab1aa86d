"""Running on many processes: where a process sits, host-side collectives, and the run's parallel context."""
