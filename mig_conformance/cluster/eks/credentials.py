"""AWS access for the `eks` backend: bearer tokens and identities (`token`), cluster discovery (`eks`).

Needs boto3 (`pip install 'mig-conformance[eks]'`). Nothing here prints, logs or stores a credential or a token:
error messages name the profile, the principal's ARN and the missing permission, never a key.
"""

from __future__ import annotations

from typing import Any

from mig_conformance.cluster.base import ClusterError
from mig_conformance.common.extras import require
from mig_conformance.common.scrub import scrub_text

#: The IAM permission each AWS call of the kit needs (named in access-denied errors and docs/eks.md).
PERMISSIONS = {
    "DescribeCluster": "eks:DescribeCluster",
    "ListClusters": "eks:ListClusters",
    "ListNodegroups": "eks:ListNodegroups",
    "DescribeNodegroup": "eks:DescribeNodegroup",
    "DescribeInstanceTypes": "ec2:DescribeInstanceTypes",
    "GetCallerIdentity": "sts:GetCallerIdentity",
    "AssumeRole": "sts:AssumeRole",
}
EXPIRED_CODES = frozenset({"ExpiredToken", "ExpiredTokenException", "RequestExpired", "TokenRefreshRequired"})
INVALID_CODES = frozenset({"InvalidClientTokenId", "UnrecognizedClientException", "SignatureDoesNotMatch",
                           "AuthFailure", "InvalidAccessKeyId", "IncompleteSignature"})
DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedAccess",
                          "Forbidden"})


class AwsError(ClusterError):
    """An AWS call failed; the message says what to do about it."""


class NoCredentials(AwsError):
    """No usable AWS credentials (none found, unknown profile, incomplete keys)."""


class ExpiredCredentials(AwsError):
    """The credentials (or the SSO session behind them) have expired."""


class InvalidCredentials(AwsError):
    """AWS does not recognise the credentials (wrong key id or secret)."""


class AccessDenied(AwsError):
    """The principal lacks an IAM permission; `permission` names it (e.g. eks:DescribeCluster)."""

    def __init__(self, message: str, permission: str) -> None:
        super().__init__(message)
        self.permission = permission


class ClusterNotFound(AwsError):
    """No EKS cluster of that name in that region; `existing` lists those there (None when they cannot be listed)."""

    def __init__(self, message: str, existing: list[str] | None) -> None:
        super().__init__(message)
        self.existing = existing


def require_boto3() -> None:
    """MissingExtra (the install hint) when boto3 or botocore is missing."""
    require(("boto3", "botocore"), "the eks backend", "eks")


def who(profile: str | None) -> str:
    return f"AWS profile '{profile}'" if profile else "the default AWS credential chain"


def translate(exc: BaseException, *, profile: str | None = None, principal: str | None = None,
              resource: str | None = None) -> AwsError:
    """An actionable AwsError for a botocore exception (AWS's own text is scrubbed; keys never appear)."""
    from botocore import exceptions as bx

    creds = who(profile)
    if isinstance(exc, AwsError):
        return exc
    if isinstance(exc, bx.ProfileNotFound):
        return NoCredentials(f"AWS profile '{profile}' is not configured in ~/.aws/config or ~/.aws/credentials "
                             "(set the clusters file's 'profile' or AWS_PROFILE to one that exists)")
    if isinstance(exc, (bx.NoCredentialsError, bx.PartialCredentialsError)):
        return NoCredentials(f"no AWS credentials found for {creds}: looked in the environment, the shared "
                             "credentials and config files, SSO, container and instance metadata; configure them "
                             "(aws configure, aws sso login, AWS_PROFILE) and try again")
    if isinstance(exc, (bx.TokenRetrievalError, bx.SSOTokenLoadError, bx.UnauthorizedSSOTokenError)):
        login = f"aws sso login --profile {profile}" if profile else "aws sso login"
        return ExpiredCredentials(f"the AWS SSO session of {creds} has expired or is missing: run `{login}`")
    if isinstance(exc, bx.CredentialRetrievalError):
        return NoCredentials(f"cannot obtain AWS credentials for {creds}: {scrub_text(str(exc))}")
    if isinstance(exc, bx.ClientError):
        return _client_error(exc, creds, principal, resource)
    if isinstance(exc, (bx.EndpointConnectionError, bx.ConnectTimeoutError, bx.ReadTimeoutError)):
        return AwsError(f"cannot reach AWS: {scrub_text(str(exc))}")
    return AwsError(f"AWS call failed: {type(exc).__name__}: {scrub_text(str(exc))}")


def _client_error(exc: Any, creds: str, principal: str | None, resource: str | None) -> AwsError:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    message = scrub_text(str(error.get("Message", "")))
    operation = getattr(exc, "operation_name", "") or ""
    permission = PERMISSIONS.get(operation, operation)
    if code in EXPIRED_CODES:
        return ExpiredCredentials(f"the AWS credentials of {creds} have expired ({code}): refresh them "
                                  "(aws sso login, a new session token, or re-run your credential helper)")
    if code in INVALID_CODES:
        return InvalidCredentials(f"AWS rejected the credentials of {creds} ({code}: {message}); check the access "
                                  "key, the secret and the session token")
    if code in DENIED_CODES:
        subject = principal or creds
        on = f" on {resource}" if resource else ""
        hint = (" (the role's trust policy must also allow the caller)" if operation == "AssumeRole" else "")
        return AccessDenied(f"access denied: {subject} needs the IAM permission {permission}{on}{hint}; "
                            f"see docs/eks.md (AWS said: {code}: {message})", permission)
    return AwsError(f"AWS {operation or 'call'} failed: {code}: {message}")
