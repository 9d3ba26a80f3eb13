"""The token webhook of the EKS end-to-end tests (tests/support/eks_webhook.py) on its own: it accepts the kit's
tokens and maps the identity, rejects every malformed, expired, foreign or tampered token, and serves TokenReviews
over TLS. Through a real API server: tests/control_plane/test_eks_webhook_e2e.py.
"""

from __future__ import annotations

import datetime as dt
import json
import ssl
import urllib.request
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("boto3")
pytest.importorskip("moto")
pytest.importorskip("cryptography")

from mig_conformance.cluster.eks import token as T
from support.eks_identities import CLUSTER, GROUP, MOTO_ARN, REGION, ROLE, STRANGER, USERS, tamper, token_at, verifier
from support.eks_webhook import Rejected, Webhook


def test_webhook_accepts_the_kits_token_and_maps_the_user(aws: None) -> None:
    arn, user = verifier().verify(token_at(CLUSTER))
    assert arn == MOTO_ARN and user == USERS[MOTO_ARN]


def test_webhook_maps_an_assumed_role_to_its_role(aws: None) -> None:
    identity = T.AwsIdentity(REGION, role_arn=ROLE, run_id="r1")
    arn, user = verifier().verify(T.TokenSource(CLUSTER, identity).token().value)
    assert arn.endswith(":assumed-role/mig-validator/mig-conformance-r1") and user.username == "mig-validator"


@pytest.mark.parametrize(("make", "reason"), [
    (lambda: tamper(token_at(CLUSTER)), "signature does not match"),
    (lambda: token_at("another-cluster"), "signature does not match"),
    (lambda: token_at(CLUSTER, dt.datetime.now(dt.UTC) - dt.timedelta(minutes=16)), "expired"),
    (lambda: token_at(CLUSTER, dt.datetime.now(dt.UTC) + dt.timedelta(minutes=30)), "future"),
    (lambda: token_at(CLUSTER, region="eu-west-1"), "not a regional STS URL of us-west-2"),
    (lambda: token_at(CLUSTER) + "=" * 2, "not unpadded base64url"),
    (lambda: "Bearer " + token_at(CLUSTER), "prefix"),
    (lambda: T.encode(T.decode(token_at(CLUSTER)).replace("sts.us-west-2.amazonaws.com", "sts.us-west-2.evil.io")),
     "not a regional STS URL"),
    (lambda: T.encode(T.decode(token_at(CLUSTER)) + "&X-Amz-Foo=1"), "X-Amz-Foo is not allowed"),
    (lambda: T.encode(T.decode(token_at(CLUSTER)).replace("GetCallerIdentity", "AssumeRole")), "GetCallerIdentity"),
    (lambda: T.encode(T.decode(token_at(CLUSTER)).replace("X-Amz-Credential=FOOBARKEY",
                                                          "X-Amz-Credential=AKIAOTHER")), "unknown access key"),
], ids=["tampered", "other-cluster", "expired", "future", "other-region", "padded", "no-prefix", "other-host",
        "extra-param", "other-action", "unknown-key"])
def test_webhook_rejects_bad_tokens(aws: None, make: Any, reason: str) -> None:
    with pytest.raises(Rejected, match=reason):
        verifier().verify(make())


def test_webhook_rejects_unmapped_identities(aws: None) -> None:
    identity = T.AwsIdentity(REGION, role_arn=STRANGER, run_id="r1")
    with pytest.raises(Rejected, match="role/stranger is not mapped"):
        verifier().verify(T.TokenSource(CLUSTER, identity).token().value)


def test_webhook_serves_token_reviews_over_tls(aws: None, tmp_path: Path) -> None:
    with Webhook(verifier(), tmp_path / "hook") as hook:
        ctx = ssl.create_default_context(cafile=str(hook.ca))

        def review(token: str) -> dict[str, Any]:
            body = json.dumps({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                               "spec": {"token": token}}).encode()
            req = urllib.request.Request(hook.url, body, {"Content-Type": "application/json"})
            with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
                return json.loads(resp.read())

        good = review(token_at(CLUSTER))
        assert good["kind"] == "TokenReview" and good["apiVersion"] == "authentication.k8s.io/v1"
        assert good["status"]["authenticated"] is True
        assert good["status"]["user"]["username"] == "eks-moto" and good["status"]["user"]["groups"] == [GROUP]
        bad = review(tamper(token_at(CLUSTER)))
        assert bad["status"]["authenticated"] is False
        assert [r.accepted for r in hook.reviews] == [True, False]
