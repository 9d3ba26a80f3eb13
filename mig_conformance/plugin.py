"""pytest plugin entry point (pytest11). Wires options, fixtures, markers and reporting to the domain modules."""
