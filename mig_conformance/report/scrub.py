"""Remove anything that looks like a token or credential before it is written to a bundle."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

REDACTED = "<redacted>"
SECRET_KEY = re.compile(r"token|secret|password|credential|authorization|bearer", re.IGNORECASE)
SECRET_PREFIXES = ("k8s-aws-v1.", "eyJ")
# Tokens embedded in free text (an assertion message, a log line): EKS tokens and JWTs.
_INLINE = re.compile(r"k8s-aws-v1\.[A-Za-z0-9_\-=.]+|\beyJ[A-Za-z0-9_\-=]+(?:\.[A-Za-z0-9_\-=]+)*")
_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9_\-=.~+/]+")


def scrub_text(text: str) -> str:
    """Replace EKS tokens, JWTs and `Bearer <x>` inside free text."""
    return _BEARER.sub(rf"\1 {REDACTED}", _INLINE.sub(REDACTED, text))


def scrub(value: Any) -> Any:
    """A copy of `value` with secret-looking keys' values and token-looking strings redacted."""
    if isinstance(value, Mapping):
        return {k: REDACTED if isinstance(k, str) and SECRET_KEY.search(k) and value[k] not in (None, "")
                else scrub(value[k]) for k in value}
    if isinstance(value, (list, tuple)):
        return [scrub(v) for v in value]
    if isinstance(value, str):
        return REDACTED if value.startswith(SECRET_PREFIXES) else scrub_text(value)
    return value
