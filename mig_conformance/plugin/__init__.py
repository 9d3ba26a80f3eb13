"""The pytest plugin: options and settings, the run session, fixtures, safety checks and signal handling."""
