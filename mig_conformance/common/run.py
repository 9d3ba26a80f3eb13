"""A run's identity: its id (in the journal, the report and the AWS role session name) and the label that marks
what it created on a cluster (the run namespace and its pods)."""

from __future__ import annotations

import datetime as dt
import secrets

RUN_LABEL = "mig-conformance/run"


def new_run_id() -> str:
    """`YYYYmmdd-HHMMSS-xxxxxx` (UTC, then 6 random hex digits): sortable, unique enough, a valid label value."""
    return f"{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
