"""EKS bearer tokens made in-process (offline: moto STS, botocore Stubber): format, signature, refresh, roles, errors,
and that no token or key ever shows up in a repr, a message or a log."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

pytest.importorskip("boto3")
pytest.importorskip("moto")

import botocore.auth
from botocore.stub import Stubber

from mig_conformance.cluster.eks import token as T
from mig_conformance.cluster.eks.credentials import (
    AccessDenied,
    ExpiredCredentials,
    InvalidCredentials,
    NoCredentials,
)
from support.eks_webhook import Key, Rejected, User, Verifier, isolate_aws_env

ROLE = "arn:aws:iam::123456789012:role/mig-validator"
MOTO_ARN = "arn:aws:sts::123456789012:user/moto"


class FakeClock:
    """One simulated clock for the TokenSource and for botocore's signing time."""

    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC).replace(microsecond=0).timestamp()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def datetime(self, remove_tzinfo: bool = True) -> dt.datetime:
        d = dt.datetime.fromtimestamp(self.now, dt.UTC)
        return d.replace(tzinfo=None) if remove_tzinfo else d


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    c = FakeClock()
    monkeypatch.setattr(botocore.auth, "get_current_datetime", c.datetime)
    return c


def url_of(token: str) -> tuple[Any, dict[str, str]]:
    parts = urlsplit(T.decode(token))
    return parts, {k: v[0] for k, v in parse_qs(parts.query).items()}


def verifier(cluster: str, region: str, **kw: Any) -> Verifier:
    keys = {"FOOBARKEY": Key("FOOBARSECRET", MOTO_ARN)}
    return Verifier(cluster, region, keys, {MOTO_ARN: User("validator", ("mig",))}, **kw)


# ---- format ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("region", ["us-east-1", "us-west-2", "eu-central-1"])
def test_token_is_an_unpadded_base64url_presigned_regional_sts_url(aws: None, region: str) -> None:
    token = T.TokenSource("prod-gpu", T.AwsIdentity(region)).token().value
    assert token.startswith("k8s-aws-v1.")
    body = token[len("k8s-aws-v1."):]
    assert "=" not in body and "+" not in body and "/" not in body
    assert len(token) <= T.MAX_TOKEN_BYTES
    parts, q = url_of(token)
    assert (parts.scheme, parts.hostname, parts.path) == ("https", f"sts.{region}.amazonaws.com", "/")
    assert q["Action"] == "GetCallerIdentity" and q["Version"] == "2011-06-15"
    assert q["X-Amz-Expires"] == "60"
    assert q["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert set(q["X-Amz-SignedHeaders"].split(";")) == {"host", "x-k8s-aws-id"}
    assert q["X-Amz-Credential"].startswith("FOOBARKEY/") and f"/{region}/sts/aws4_request" in q["X-Amz-Credential"]
    # the signature is right for this cluster name and wrong for any other
    assert verifier("prod-gpu", region).verify(token)[1].username == "validator"
    with pytest.raises(Rejected, match="signature"):
        verifier("prod-gpu-2", region).verify(token)


def test_padding_is_stripped_for_every_length(aws: None) -> None:
    """Tokens whose base64 would need one or two '=' carry none (the URL's length varies with the region)."""
    source_lengths = set()
    for region in ("us-west-2", "me-south-1", "ap-southeast-2"):
        token = T.TokenSource("prod", T.AwsIdentity(region)).token().value
        body = token[len(T.TOKEN_PREFIX):]
        assert not body.endswith("=")
        source_lengths.add(len(T.decode(token)) % 3)
    assert source_lengths == {0, 1, 2}, "every padding case was exercised"


def test_regional_endpoint_even_when_the_environment_asks_for_legacy(aws: None,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_STS_REGIONAL_ENDPOINTS", "legacy")
    parts, _ = url_of(T.TokenSource("c", T.AwsIdentity("us-east-1")).token().value)
    assert parts.hostname == "sts.us-east-1.amazonaws.com"


def test_decode_rejects_foreign_tokens() -> None:
    with pytest.raises(ValueError, match="prefix"):
        T.decode("eyJhbGciOi.x.y")
    assert T.decode(T.encode("https://sts.us-west-2.amazonaws.com/?a=1")) == "https://sts.us-west-2.amazonaws.com/?a=1"


# ---- refresh ------------------------------------------------------------------------------------------------
def test_cached_until_14_minutes_then_renewed(aws: None, clock: FakeClock) -> None:
    source = T.TokenSource("prod-gpu", T.AwsIdentity("us-west-2"), clock)
    first = source.token()
    clock.advance(13 * 60 + 59)
    assert source.token() is first and source.issued_count == 1
    clock.advance(1)  # 14:00 after issue
    second = source.token()
    assert second is not first and second.value != first.value and source.issued_count == 2
    _, q1 = url_of(first.value)
    _, q2 = url_of(second.value)
    signed = [dt.datetime.strptime(q["X-Amz-Date"], "%Y%m%dT%H%M%SZ") for q in (q1, q2)]
    assert signed[1] - signed[0] == dt.timedelta(minutes=14)
    assert second.expires - clock() == 15 * 60


def test_renewed_when_less_than_a_minute_remains(aws: None, clock: FakeClock) -> None:
    source = T.TokenSource("c", T.AwsIdentity("us-west-2"), clock)
    assert source.stale(None, clock())
    assert not source.stale(T.Token("k8s-aws-v1.x", clock() - (T.REFRESH_AFTER_S - 1)), clock())
    assert source.stale(T.Token("k8s-aws-v1.x", clock() - (T.TOKEN_LIFETIME_S - 59)), clock())


def test_kubernetes_configuration_gets_fresh_tokens_past_15_minutes(aws: None, clock: FakeClock) -> None:
    """The ApiClient's hook runs before every request: after 20 simulated minutes it sends a new, valid token."""
    from kubernetes import client

    source = T.TokenSource("prod-gpu", T.AwsIdentity("us-west-2"), clock)
    config = client.Configuration()
    source.install(config)
    check = verifier("prod-gpu", "us-west-2", now=lambda: clock.datetime(remove_tzinfo=False))
    header1 = config.auth_settings()["BearerToken"]["value"]
    assert header1.startswith("Bearer k8s-aws-v1.")
    check.verify(header1.split(" ", 1)[1])
    clock.advance(20 * 60)
    with pytest.raises(Rejected, match="expired"):
        check.verify(header1.split(" ", 1)[1])
    header2 = config.auth_settings()["BearerToken"]["value"]
    assert header2 != header1
    check.verify(header2.split(" ", 1)[1])
    assert source.issued_count == 2
    config.auth_settings()
    assert source.issued_count == 2, "the hook must not make a token per request"


# ---- roles --------------------------------------------------------------------------------------------------
def _assumed_roles() -> list[Any]:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sts.models import sts_backends

    return sts_backends[DEFAULT_ACCOUNT_ID]["global"].assumed_roles


def test_role_is_assumed_with_the_run_session_name_and_signs_the_token(aws: None, clock: FakeClock) -> None:
    identity = T.AwsIdentity("us-west-2", role_arn=ROLE, run_id="20261124-101500-abc123", clock=clock)
    assert identity.caller_arn() == ("arn:aws:sts::123456789012:assumed-role/mig-validator/"
                                     "mig-conformance-20261124-101500-abc123")
    role = _assumed_roles()[-1]
    assert role.session_name == "mig-conformance-20261124-101500-abc123"
    token = T.TokenSource("prod-gpu", identity, clock).token().value
    _, q = url_of(token)
    assert q["X-Amz-Credential"].startswith(role.access_key_id + "/")
    assert q["X-Amz-Security-Token"] == role.session_token
    keys = {role.access_key_id: Key(role.secret_access_key, identity.caller_arn(), role.session_token)}
    users = {ROLE: User("validator")}  # EKS maps the role, whatever the session
    assert Verifier("prod-gpu", "us-west-2", keys, users).verify(token)[1] == users[ROLE]


def test_role_is_assumed_again_before_its_credentials_end(aws: None, clock: FakeClock) -> None:
    identity = T.AwsIdentity("us-west-2", role_arn=ROLE, run_id="r1", clock=clock)
    first = identity.session()
    count = len(_assumed_roles())
    clock.advance(T.ROLE_SECONDS - T.ROLE_MARGIN_S - 60)
    assert identity.session() is first
    clock.now = _assumed_roles()[-1].expiration.replace(tzinfo=dt.UTC).timestamp() - T.ROLE_MARGIN_S + 1
    assert identity.session() is not first and len(_assumed_roles()) == count + 1


def test_no_token_in_use_outlives_the_role_credentials_that_signed_it(aws: None, clock: FakeClock,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import moto.sts.models

    monkeypatch.setattr(moto.sts.models, "utcnow", clock.datetime)  # STS issues credentials on the same clock
    identity = T.AwsIdentity("us-west-2", role_arn=ROLE, run_id="r1", clock=clock)
    identity.session()  # the role is assumed first (e.g. for cluster discovery), tokens come later
    clock.advance(7 * 60)
    source = T.TokenSource("prod-gpu", identity, clock)
    for _ in range(150):  # two and a half hours, a request a minute: the role is assumed again twice
        token = source.token()
        _, q = url_of(token.value)
        signer = next(r for r in _assumed_roles() if r.session_token == q["X-Amz-Security-Token"])
        assert token.expires <= signer.expiration.replace(tzinfo=dt.UTC).timestamp()
        clock.advance(60)
    assert len({r.session_token for r in _assumed_roles()}) >= 3


def test_role_session_name_is_valid_for_sts() -> None:
    name = T.role_session_name("2026/11/24 10:15:00 " + "x" * 80)
    assert name.startswith("mig-conformance-2026-11-24-10-15-00") and len(name) == 64
    assert all(c.isalnum() or c in "+=,.@-_" for c in name)


# ---- errors --------------------------------------------------------------------------------------------------
def test_no_credentials_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_aws_env(monkeypatch, tmp_path)
    with pytest.raises(NoCredentials, match="no AWS credentials found for the default AWS credential chain"):
        T.TokenSource("c", T.AwsIdentity("us-west-2")).token()


def test_unknown_profile_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_aws_env(monkeypatch, tmp_path)
    (tmp_path / "aws-config").write_text("[profile other]\nregion = us-west-2\n")
    with pytest.raises(NoCredentials, match="AWS profile 'gpu-admin' is not configured"):
        T.AwsIdentity("us-west-2", profile="gpu-admin").session()


class StubSession:
    """A boto3-Session look-alike whose clients are stubbed."""

    def __init__(self, stubs: dict[str, Any]) -> None:
        self.stubs = stubs

    def client(self, service: str, region_name: str | None = None) -> Any:
        return self.stubs[service]


def stubbed(service: str, region: str = "us-west-2") -> tuple[Any, Stubber]:
    import boto3

    c = boto3.Session(aws_access_key_id="AKIASTUB", aws_secret_access_key="stub-secret-0123456789",
                      region_name=region).client(service)
    return c, Stubber(c)


def test_expired_credentials_say_so(aws: None) -> None:
    sts, stub = stubbed("sts")
    stub.add_client_error("get_caller_identity", service_error_code="ExpiredToken", http_status_code=403,
                          service_message="The security token included in the request is expired")
    identity = T.AwsIdentity("us-west-2", profile=None)
    identity._base = StubSession({"sts": sts})
    with stub, pytest.raises(ExpiredCredentials, match=r"have expired .*refresh them"):
        identity.caller_arn()


def test_assume_role_denied_names_sts_assume_role(aws: None) -> None:
    sts, stub = stubbed("sts")
    stub.add_client_error("assume_role", service_error_code="AccessDenied", http_status_code=403,
                          service_message=f"User: {MOTO_ARN} is not authorized to perform: sts:AssumeRole on "
                                          f"resource: {ROLE}")
    stub.add_response("get_caller_identity", {"Arn": "arn:aws:iam::123456789012:user/dev", "UserId": "AIDA",
                                              "Account": "123456789012"})
    identity = T.AwsIdentity("us-west-2", role_arn=ROLE)
    identity._base = StubSession({"sts": sts})
    with stub, pytest.raises(AccessDenied) as info:
        identity.session()
    assert info.value.permission == "sts:AssumeRole"
    assert ("access denied: arn:aws:iam::123456789012:user/dev needs the IAM permission sts:AssumeRole on role "
            + ROLE) in str(info.value)
    assert "trust policy" in str(info.value)


# ---- no secrets anywhere -------------------------------------------------------------------------------------
def test_tokens_and_keys_never_in_reprs_messages_or_logs(aws: None, clock: FakeClock,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # as under `pytest --log-level=DEBUG`
    identity = T.AwsIdentity("us-west-2", role_arn=ROLE, run_id="r2", clock=clock)
    source = T.TokenSource("prod-gpu", identity, clock)
    token = source.token()
    role = _assumed_roles()[-1]
    secrets = [token.value, role.secret_access_key, role.session_token, "FOOBARSECRET"]
    texts = [repr(token), str(token), repr(source), repr(identity), identity.describe(), caplog.text]
    sts, stub = stubbed("sts")
    stub.add_client_error("get_caller_identity", service_error_code="InvalidClientTokenId", http_status_code=403,
                          service_message="The security token included in the request is invalid.")
    bad = T.AwsIdentity("us-west-2")
    bad._base = StubSession({"sts": sts})
    with stub, pytest.raises(InvalidCredentials, match=r"^AWS rejected the credentials of the default AWS credential "
                             r"chain \(InvalidClientTokenId: The security token included in the request is "
                             r"invalid\.\); check the access key, the secret and the session token$") as info:
        bad.caller_arn()
    texts.append(str(info.value))
    assert "assumed role" in caplog.text, "logging was captured at all"
    for text in texts:
        for secret in secrets:
            assert secret not in text
        assert "k8s-aws-v1." not in text
