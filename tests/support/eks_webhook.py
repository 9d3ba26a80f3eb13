"""Test support: a token-authentication webhook for kube-apiserver that accepts EKS tokens as EKS would, offline.

It cannot call STS, so it checks what STS would: the token is `k8s-aws-v1.` + unpadded base64url of a presigned
GetCallerIdentity URL on `sts.<region>.amazonaws.com`, only the parameters aws-iam-authenticator allows,
`x-k8s-aws-id` among the signed headers, signed less than 15 minutes ago, and a SigV4 signature that is correct
for the expected cluster name and the secret of the access key (the fake keys the test uses). The caller's ARN
(an assumed role is reduced to its role ARN, as EKS does) is mapped to a Kubernetes user and groups.

Also here: `isolate_aws_env`, so tests never read the developer's AWS files or profile.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import re
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
import yaml

PREFIX = "k8s-aws-v1."
MAX_TOKEN = 4096
LIFETIME = dt.timedelta(minutes=15)
MAX_SKEW = dt.timedelta(minutes=5)
ALLOWED = {"action", "version", "x-amz-algorithm", "x-amz-credential", "x-amz-date", "x-amz-expires",
           "x-amz-security-token", "x-amz-signature", "x-amz-signedheaders"}
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
ASSUMED = re.compile(r"^arn:(aws[\w-]*):sts::(\d{12}):assumed-role/([^/]+)/(.+)$")


@dataclass(frozen=True)
class Key:
    """A fake AWS access key the webhook knows: its secret, whose it is, the session token if temporary."""

    secret: str
    arn: str
    session_token: str | None = None


@dataclass(frozen=True)
class User:
    username: str
    groups: tuple[str, ...] = ()


class Rejected(Exception):
    """The token is not acceptable; the message says why (never the token)."""


def isolate_aws_env(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """No AWS profile, shared files or credentials of the developer's machine leak into a test."""
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "AWS_STS_REGIONAL_ENDPOINTS", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_STS", "AWS_DEFAULT_REGION",
                "AWS_REGION", "KUBERNETES_EXEC_INFO"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(folder / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(folder / "aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def canonical_arn(arn: str) -> str:
    """arn:aws:sts::A:assumed-role/R/S -> arn:aws:iam::A:role/R (EKS maps roles, not sessions)."""
    m = ASSUMED.match(arn)
    return f"arn:{m[1]}:iam::{m[2]}:role/{m[3]}" if m else arn


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def sigv4(secret: str, amz_date: str, scope: str, canonical_request: str) -> str:
    """The SigV4 signature of a canonical request (AWS's documented algorithm)."""
    string_to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                                hashlib.sha256(canonical_request.encode()).hexdigest()])
    key = ("AWS4" + secret).encode()
    for part in scope.split("/"):
        key = _hmac(key, part)
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def _encode(text: str) -> str:
    return quote(text, safe="-_.~")


class Verifier:
    """Checks EKS tokens for one cluster name and region against known keys; maps callers to users."""

    def __init__(self, cluster: str, region: str, keys: Mapping[str, Key] | Callable[[str], Key | None],
                 users: Mapping[str, User], now: Callable[[], dt.datetime] | None = None) -> None:
        self.cluster = cluster
        self.region = region
        self._keys = keys
        self.users = dict(users)
        self.now = now or (lambda: dt.datetime.now(dt.UTC))

    def key(self, access_key_id: str) -> Key | None:
        return self._keys(access_key_id) if callable(self._keys) else self._keys.get(access_key_id)

    def verify(self, token: str) -> tuple[str, User]:
        """(caller ARN, user) or Rejected."""
        url = self._url(token)
        parts = urlsplit(url)
        host = f"sts.{self.region}.amazonaws.com"
        if parts.scheme != "https" or parts.hostname != host or parts.port is not None:
            raise Rejected(f"not a regional STS URL of {self.region} (want https://{host})")
        if parts.path not in ("", "/"):
            raise Rejected("unexpected path")
        params = self._params(parts.query)
        if params.get("Action") != "GetCallerIdentity" or params.get("Version") != "2011-06-15":
            raise Rejected("not a GetCallerIdentity request")
        if params.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256":
            raise Rejected("not signed with AWS4-HMAC-SHA256")
        signed = params.get("X-Amz-SignedHeaders", "").split(";")
        if "x-k8s-aws-id" not in signed or "host" not in signed or set(signed) - {"host", "x-k8s-aws-id"}:
            raise Rejected(f"signed headers {signed}: need exactly host and x-k8s-aws-id")
        amz_date = params.get("X-Amz-Date", "")
        signed_at = self._signed_at(amz_date, params.get("X-Amz-Expires", ""))
        key_id, scope = self._scope(params.get("X-Amz-Credential", ""), amz_date)
        key = self.key(key_id)
        if key is None:
            raise Rejected("unknown access key")
        if key.session_token is not None and params.get("X-Amz-Security-Token") != key.session_token:
            raise Rejected("wrong or missing session token")
        canonical = "\n".join([
            "GET", "/", "&".join(sorted(f"{_encode(k)}={_encode(v)}" for k, v in params.items()
                                        if k != "X-Amz-Signature")),
            "".join(f"{h}:{host if h == 'host' else self.cluster}\n" for h in sorted(signed)),
            ";".join(sorted(signed)), EMPTY_SHA256])
        want = sigv4(key.secret, amz_date, scope, canonical)
        if not hmac.compare_digest(want, params.get("X-Amz-Signature", "")):
            raise Rejected(f"signature does not match (token for another cluster than {self.cluster}, "
                           "or tampered)")
        if self.now() > signed_at + LIFETIME:
            raise Rejected("token expired (signed more than 15 minutes ago)")
        arn = canonical_arn(key.arn)
        user = self.users.get(arn)
        if user is None:
            raise Rejected(f"{arn} is not mapped to a Kubernetes user")
        return key.arn, user

    def _url(self, token: str) -> str:
        if len(token) > MAX_TOKEN:
            raise Rejected("token too long")
        if not token.startswith(PREFIX):
            raise Rejected("no k8s-aws-v1. prefix")
        body = token[len(PREFIX):]
        if "=" in body or not re.fullmatch(r"[A-Za-z0-9_-]+", body):
            raise Rejected("not unpadded base64url")
        try:
            return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise Rejected("not base64url") from None

    @staticmethod
    def _params(query: str) -> dict[str, str]:
        try:
            pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
        except ValueError:
            raise Rejected("malformed query") from None
        params: dict[str, str] = {}
        for k, v in pairs:
            if k.lower() not in ALLOWED:
                raise Rejected(f"parameter {k} is not allowed")
            if k in params:
                raise Rejected(f"parameter {k} repeated")
            params[k] = v
        return params

    def _signed_at(self, amz_date: str, expires: str) -> dt.datetime:
        try:
            signed_at = dt.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
        except ValueError:
            raise Rejected("bad X-Amz-Date") from None
        if not expires.isdigit():
            raise Rejected("bad X-Amz-Expires")
        if signed_at > self.now() + MAX_SKEW:
            raise Rejected("signed in the future")
        return signed_at

    def _scope(self, credential: str, amz_date: str) -> tuple[str, str]:
        key_id, _, scope = credential.partition("/")
        fields = scope.split("/")
        if len(fields) != 4 or fields[0] != amz_date[:8] or fields[1] != self.region or fields[2:] != [
                "sts", "aws4_request"]:
            raise Rejected("bad credential scope")
        return key_id, scope


# ---- the HTTPS server ------------------------------------------------------------------------------------
def make_tls(folder: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a serving certificate for 127.0.0.1: (ca.crt, server.crt, server.key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def build(subject: str, issuer: str, pub: Any) -> x509.CertificateBuilder:
        return (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
                .public_key(pub).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1)))

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (build("eks-webhook-test-ca", "eks-webhook-test-ca", ca_key.public_key())
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    cert = (build("eks-webhook", "eks-webhook-test-ca", key.public_key())
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / "ca.crt", folder / "server.crt", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    paths[2].chmod(0o600)
    return paths


@dataclass(frozen=True)
class Review:
    """One TokenReview the webhook answered: accepted or not, why, the caller, and a digest of the token."""

    accepted: bool
    reason: str
    arn: str | None
    token_sha256: str


class Webhook:
    """`with Webhook(verifier, folder) as hook:` serves TokenReviews on https://127.0.0.1:<port>/authenticate."""

    def __init__(self, verifier: Verifier, folder: Path) -> None:
        self.verifier = verifier
        self.folder = folder
        self.reviews: list[Review] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"https://127.0.0.1:{self._server.server_address[1]}/authenticate"

    def review(self, token: str) -> dict[str, Any]:
        """The TokenReview status for `token` (also recorded in `reviews`)."""
        digest = hashlib.sha256(token.encode()).hexdigest()
        try:
            arn, user = self.verifier.verify(token)
        except Rejected as exc:
            self.reviews.append(Review(False, str(exc), None, digest))
            return {"authenticated": False, "error": str(exc)}
        self.reviews.append(Review(True, "ok", arn, digest))
        return {"authenticated": True, "user": {"username": user.username, "uid": f"aws-iam-authenticator:{arn}",
                                                "groups": list(user.groups), "extra": {"arn": [arn]}}}

    def start(self) -> Webhook:
        ca, cert, key = make_tls(self.folder)
        self.ca = ca
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                token = (body.get("spec") or {}).get("token", "")
                answer = {"apiVersion": body.get("apiVersion", "authentication.k8s.io/v1"), "kind": "TokenReview",
                          "status": hook.review(token)}
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # never log requests (they carry tokens)
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="eks-webhook", daemon=True)
        self._thread.start()
        return self

    def kubeconfig(self, path: Path) -> Path:
        """The file for kube-apiserver's --authentication-token-webhook-config-file."""
        doc = {"apiVersion": "v1", "kind": "Config",
               "clusters": [{"name": "eks-webhook", "cluster": {
                   "server": self.url,
                   "certificate-authority-data": base64.b64encode(self.ca.read_bytes()).decode()}}],
               "users": [{"name": "kube-apiserver", "user": {}}],
               "contexts": [{"name": "webhook", "context": {"cluster": "eks-webhook", "user": "kube-apiserver"}}],
               "current-context": "webhook"}
        path.write_text(yaml.safe_dump(doc))
        return path

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Webhook:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def apiserver_args(webhook_kubeconfig: Path) -> list[str]:
    """kube-apiserver flags that authenticate bearer tokens with the webhook, every request asked afresh."""
    return [f"--authentication-token-webhook-config-file={webhook_kubeconfig}",
            "--authentication-token-webhook-version=v1", "--authentication-token-webhook-cache-ttl=0s"]


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()
