"""Utilities every layer may use: located errors, bounded YAML with line numbers, typed field readers, private
files, run ids."""
