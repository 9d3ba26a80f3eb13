"""Test support: the fake EKS of the tests (moto's account, identities mapped by the token webhook of
support/eks_webhook.py) and the kit's EKS tokens made at a chosen time or tampered with.

Used by tests/unit/test_eks_webhook.py (the webhook on its own) and tests/control_plane/test_eks_webhook_e2e.py
(through a real API server). Import after `pytest.importorskip("boto3")` / `("moto")`.
"""

from __future__ import annotations

import base64
import datetime as dt

import botocore.auth
import pytest

from mig_conformance.cluster.eks import token as T
from support.eks_webhook import Key, User, Verifier

REGION = "us-west-2"
CLUSTER = "e2e-gpu"
ACCOUNT = "123456789012"
MOTO_ARN = f"arn:aws:sts::{ACCOUNT}:user/moto"  # who moto's FOOBARKEY is
ROLE = f"arn:aws:iam::{ACCOUNT}:role/mig-validator"
STRANGER = f"arn:aws:iam::{ACCOUNT}:role/stranger"  # a valid identity without an access entry
ADMIN = f"arn:aws:iam::{ACCOUNT}:role/mig-admin"  # may also reconfigure
GROUP = "mig-conformance:validators"
ADMIN_GROUP = "mig-conformance:reconfigurers"
NODEGROUP = "gpu-p5-48xlarge"  # what the local backend labels its p5.48xlarge nodes with
URL_B64 = base64.urlsafe_b64encode(b"https://sts.").decode()  # how every token body begins
USERS = {MOTO_ARN: User("eks-moto", (GROUP,)), ROLE: User("mig-validator", (GROUP,)),
         ADMIN: User("mig-admin", (GROUP, ADMIN_GROUP))}


def moto_keys(access_key_id: str) -> Key | None:
    """FOOBARKEY, or the temporary keys of a role moto handed out (the webhook's stand-in for STS)."""
    if access_key_id == "FOOBARKEY":
        return Key("FOOBARSECRET", MOTO_ARN)
    from moto.sts.models import sts_backends

    for role in sts_backends[ACCOUNT]["global"].assumed_roles:
        if role.access_key_id == access_key_id:
            arn = f"arn:aws:sts::{ACCOUNT}:assumed-role/{role.role_arn.split('/')[-1]}/{role.session_name}"
            return Key(role.secret_access_key, arn, role.session_token)
    return None


def moto_secrets() -> list[str]:
    from moto.sts.models import sts_backends

    roles = sts_backends[ACCOUNT]["global"].assumed_roles
    return ["FOOBARSECRET", *(r.secret_access_key for r in roles), *(r.session_token for r in roles)]


def token_at(cluster: str, when: dt.datetime | None = None, region: str = REGION) -> str:
    """A token made by the kit, signed at `when` (botocore's clock moved there)."""
    if when is None:
        return T.TokenSource(cluster, T.AwsIdentity(region)).token().value
    mp = pytest.MonkeyPatch()
    mp.setattr(botocore.auth, "get_current_datetime", lambda remove_tzinfo=True: when.replace(tzinfo=None))
    try:
        return T.TokenSource(cluster, T.AwsIdentity(region)).token().value
    finally:
        mp.undo()


def tamper(token: str) -> str:
    """Flip one hex digit of X-Amz-Signature and re-encode."""
    url = T.decode(token)
    head, sig = url.rsplit("X-Amz-Signature=", 1)
    return T.encode(f"{head}X-Amz-Signature={'0' if sig[0] != '0' else '1'}{sig[1:]}")


def verifier() -> Verifier:
    return Verifier(CLUSTER, REGION, moto_keys, USERS)
