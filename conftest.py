"""Repository-level pytest configuration for the kit's own tests (the plugin itself comes from the pytest11
entry point; pytester is enabled with `-p pytester` in pyproject's addopts)."""

collect_ignore = [".cache", ".venv", "build", "dist"]
