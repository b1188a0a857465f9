"""Use cases. Each takes its collaborators in its constructor and never reads the environment."""
