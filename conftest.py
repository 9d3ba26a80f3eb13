"""Repository-level pytest configuration: the kit's own tests use pytester to run pytest in pytest."""

pytest_plugins = ["pytester"]
