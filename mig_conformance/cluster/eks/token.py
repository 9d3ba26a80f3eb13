"""EKS bearer tokens without the aws CLI, and the AWS identity that signs them.

A token is `k8s-aws-v1.` + unpadded base64url of a presigned STS GetCallerIdentity URL (GET, SigV4, the signed
header `x-k8s-aws-id: <cluster>`, X-Amz-Expires=60 as aws-iam-authenticator sets it, regional STS endpoint). EKS
accepts it for 15 minutes after signing; `TokenSource` caches one and makes a new one after 14 minutes (or when
less than 60 s remain), also inside a kubernetes `Configuration` through `refresh_api_key_hook`, so that runs longer
than 15 minutes keep working. Tokens and keys never appear in reprs, logs or messages.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from mig_conformance.cluster.eks.credentials import AwsError, require_boto3, translate, who
from mig_conformance.common.run import new_run_id

log = logging.getLogger("mig_conformance.cluster.eks")

TOKEN_PREFIX = "k8s-aws-v1."
CLUSTER_ID_HEADER = "x-k8s-aws-id"
PRESIGN_SECONDS = 60  # "unused parameter set to 60 for legacy reasons" (aws-iam-authenticator)
TOKEN_LIFETIME_S = 15 * 60  # EKS accepts a token this long after it was signed
REFRESH_AFTER_S = 14 * 60  # make a new one after this age (aws eks get-token reports the same expiry)
REFRESH_MARGIN_S = 60  # ... or when less than this is left
MAX_TOKEN_BYTES = 4096
ROLE_SECONDS = 3600  # assumed-role session length
# Assume the role again when its credentials have less than this left: more than a token lives, so that no token
# in use outlives the credentials that signed it (STS rejects the presigned call once they expired).
ROLE_MARGIN_S = TOKEN_LIFETIME_S + 300
Clock = Callable[[], float]
#: Their DEBUG output holds credentials (signed requests, AssumeRole responses with secret keys): kept at INFO.
QUIET_LOGGERS = ("botocore", "boto3", "s3transfer")


@dataclass(frozen=True)
class Token:
    """A bearer token and when it was made (`issued`, seconds on the TokenSource's clock)."""

    value: str = field(repr=False)
    issued: float

    @property
    def expires(self) -> float:
        """When EKS stops accepting it."""
        return self.issued + TOKEN_LIFETIME_S

    @property
    def refresh_at(self) -> float:
        return self.issued + REFRESH_AFTER_S

    def expiration_timestamp(self) -> str:
        """RFC 3339 UTC time for an ExecCredential (`issued` is epoch seconds there): 14 minutes after issue."""
        return dt.datetime.fromtimestamp(self.refresh_at, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def __str__(self) -> str:
        return f"<EKS token issued at {self.issued:.0f}>"


def role_session_name(run_id: str) -> str:
    """`mig-conformance-<runid>`, within STS's limits (2-64 characters of [\\w+=,.@-])."""
    safe = "".join(c if c.isalnum() or c in "+=,.@-_" else "-" for c in run_id)
    return f"mig-conformance-{safe}"[:64]


def encode(url: str) -> str:
    """The token for a presigned URL: prefix + unpadded base64url."""
    return TOKEN_PREFIX + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


def decode(token: str) -> str:
    """The presigned URL inside a token (ValueError when it is not one)."""
    if not token.startswith(TOKEN_PREFIX):
        raise ValueError(f"not an EKS token (no {TOKEN_PREFIX} prefix)")
    body = token[len(TOKEN_PREFIX):]
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()


def quiet_aws_debug_logs() -> None:
    """Keep botocore's DEBUG records (which print signed requests and AssumeRole responses) out of every log, also
    under `pytest --log-level=DEBUG`."""
    for name in QUIET_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level < logging.INFO:
            logger.setLevel(logging.INFO)


def botocore_session(profile: str | None = None) -> Any:
    """A botocore session (profile or the default chain) that resolves STS to its regional endpoint."""
    require_boto3()
    quiet_aws_debug_logs()
    import botocore.session
    from botocore import exceptions as bx

    try:
        session = botocore.session.Session(profile=profile)
        session.set_config_variable("sts_regional_endpoints", "regional")
        if profile:
            session.get_scoped_config()  # ProfileNotFound now, not on the first call
    except bx.ProfileNotFound as exc:
        raise translate(exc, profile=profile) from None
    return session


class AwsIdentity:
    """The AWS credentials the kit uses: a profile (or the default chain), optionally a role assumed with the
    session name `mig-conformance-<run_id>` (assumed again before its temporary credentials end)."""

    def __init__(self, region: str, profile: str | None = None, role_arn: str | None = None,
                 run_id: str | None = None, clock: Clock = time.time) -> None:
        self.region = region
        self.profile = profile
        self.role_arn = role_arn
        self.session_name = role_session_name(run_id or new_run_id())
        self._clock = clock
        self._base: Any = None
        self._session: Any = None
        self._role_expires: float | None = None
        self._arn: str | None = None
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"AwsIdentity(region={self.region!r}, profile={self.profile!r}, role_arn={self.role_arn!r})"

    def describe(self) -> str:
        """Who the kit acts as, for messages: the caller's ARN when known, else the profile and role."""
        if self._arn:
            return self._arn
        role = f" as role {self.role_arn}" if self.role_arn else ""
        return who(self.profile) + role

    def _base_session(self) -> Any:
        import boto3

        if self._base is None:
            from botocore.exceptions import NoCredentialsError

            base = boto3.Session(botocore_session=botocore_session(self.profile), region_name=self.region)
            try:
                creds = base.get_credentials()
            except Exception as exc:
                raise translate(exc, profile=self.profile) from None
            if creds is None:
                raise translate(NoCredentialsError(), profile=self.profile)
            self._base = base
        return self._base

    def session(self) -> Any:
        """A boto3 Session with valid credentials (the assumed role's when role_arn is set)."""
        with self._lock:
            if self.role_arn is None:
                return self._base_session()
            if self._session is None or self._clock() >= (self._role_expires or 0) - ROLE_MARGIN_S:
                self._session = self._assume()
            return self._session

    def _assume(self) -> Any:
        import boto3

        base = self._base_session()
        sts = base.client("sts", region_name=self.region)
        try:
            creds = sts.assume_role(RoleArn=self.role_arn, RoleSessionName=self.session_name,
                                    DurationSeconds=ROLE_SECONDS)["Credentials"]
        except Exception as exc:
            raise translate(exc, profile=self.profile, principal=self._arn_of(sts),
                            resource=f"role {self.role_arn}") from None
        expiration = creds.get("Expiration")
        self._role_expires = (expiration.timestamp() if isinstance(expiration, dt.datetime)
                              else self._clock() + ROLE_SECONDS)
        log.info("assumed role %s as session %s", self.role_arn, self.session_name)
        bs = botocore_session(None)
        bs.set_credentials(creds["AccessKeyId"], creds["SecretAccessKey"], creds.get("SessionToken"))
        return boto3.Session(botocore_session=bs, region_name=self.region)

    @staticmethod
    def _arn_of(sts: Any) -> str | None:
        """The caller's ARN for an error message, None when even that fails."""
        try:
            return str(sts.get_caller_identity()["Arn"])
        except Exception:
            return None

    def client(self, service: str) -> Any:
        return self.session().client(service, region_name=self.region)

    def caller_arn(self) -> str:
        """sts:GetCallerIdentity: checks that the credentials work (expired ones fail here, clearly)."""
        if self._arn is None:
            try:
                self._arn = str(self.client("sts").get_caller_identity()["Arn"])
            except AwsError:
                raise
            except Exception as exc:
                raise translate(exc, profile=self.profile) from None
        return self._arn


def presigned_url(sts: Any, cluster: str) -> str:
    """Presign GetCallerIdentity on `sts` with the signed x-k8s-aws-id header (the hook is there for this call only)."""

    def add_cluster_id(request: Any, **_: Any) -> None:
        request.headers[CLUSTER_ID_HEADER] = cluster

    sts.meta.events.register("before-sign.sts.GetCallerIdentity", add_cluster_id)
    try:
        return cast(str, sts.generate_presigned_url("get_caller_identity", Params={}, ExpiresIn=PRESIGN_SECONDS,
                                                    HttpMethod="GET"))
    finally:
        sts.meta.events.unregister("before-sign.sts.GetCallerIdentity", add_cluster_id)


class TokenSource:
    """Tokens for one EKS cluster: cached, new after 14 minutes or when less than 60 s remain (thread-safe)."""

    def __init__(self, cluster: str, identity: AwsIdentity, clock: Clock = time.time) -> None:
        self.cluster = cluster
        self.identity = identity
        self._clock = clock
        self._token: Token | None = None
        self._lock = threading.Lock()
        self.issued_count = 0

    def __repr__(self) -> str:
        return f"TokenSource(cluster={self.cluster!r}, identity={self.identity!r})"

    def stale(self, token: Token | None, now: float) -> bool:
        return token is None or now >= token.refresh_at or token.expires - now < REFRESH_MARGIN_S

    def token(self) -> Token:
        """The cached token, or a new one when it is due."""
        with self._lock:
            now = self._clock()
            if self._token is None or self.stale(self._token, now):
                self._token = self._new(now)
            return self._token

    def _new(self, now: float) -> Token:
        try:
            url = presigned_url(self.identity.client("sts"), self.cluster)
        except AwsError:
            raise
        except Exception as exc:
            raise translate(exc, profile=self.identity.profile) from None
        value = encode(url)
        if len(value) > MAX_TOKEN_BYTES:
            raise AwsError(f"the EKS token for {self.cluster} is {len(value)} bytes, more than EKS accepts "
                           f"({MAX_TOKEN_BYTES}); very long session tokens cannot be used")
        self.issued_count += 1
        log.debug("new EKS token for %s (#%d)", self.cluster, self.issued_count)
        return Token(value, now)

    def install(self, configuration: Any) -> None:
        """Make a kubernetes `Configuration` send `Bearer <token>`, renewed by refresh_api_key_hook when due."""
        configuration.api_key_prefix["BearerToken"] = "Bearer"
        configuration.api_key["BearerToken"] = self.token().value
        configuration.refresh_api_key_hook = self._refresh

    def _refresh(self, configuration: Any) -> None:
        # Called before every request: cheap unless the token is due.
        configuration.api_key["BearerToken"] = self.token().value
