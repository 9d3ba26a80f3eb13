"""Remove anything that looks like a token or credential before it is written to a bundle."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

REDACTED = "<redacted>"
#: Keys whose values are secrets: tokens, passwords, AWS secret keys and session tokens, kubeconfig key data.
SECRET_KEY = re.compile(r"token|secret|password|passwd|credential|authorization|bearer|signature|private|"
                        r"(client|user)[-_]?key|key[-_]data|access[-_]?key", re.IGNORECASE)
SECRET_PREFIXES = ("k8s-aws-v1.", "eyJ", "-----BEGIN")
# Secrets inside free text (an assertion message, a log line, a URL).
_INLINE = re.compile(
    r"k8s-aws-v1\.[A-Za-z0-9_\-=.]+"  # EKS bearer tokens
    r"|\beyJ[A-Za-z0-9_\-=]+(?:\.[A-Za-z0-9_\-=]+)*"  # JWTs (ServiceAccount tokens)
    r"|\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"  # AWS access key ids
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)",  # PEM private keys
    re.DOTALL)
# `name=value`, `name: value` and `"name": "value"` where the name says secret (aws_secret_access_key = ..., a
# presigned URL's X-Amz-Signature=/X-Amz-Security-Token=/X-Amz-Credential=, client-key-data: ...).
_ASSIGNED = re.compile(
    r"(?i)(\b(?:x-amz-(?:signature|security-token|credential)|aws_secret_access_key|aws_session_token|"
    r"secret_?access_?key|session_?token|client-key-data|password|token)[\"']?\s*[=:]\s*[\"']?)"
    r"([^\s&\"',;}<>]+)")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9_\-=.~+/]+")


def scrub_text(text: str) -> str:
    """Replace tokens, keys, signatures and `Bearer/Basic <x>` inside free text."""
    text = _INLINE.sub(REDACTED, text)
    text = _ASSIGNED.sub(lambda m: m.group(1) + REDACTED, text)
    return _BEARER.sub(rf"\1 {REDACTED}", text)


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
