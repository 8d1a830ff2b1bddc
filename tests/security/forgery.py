"""Forged and misused access tokens: every way an attacker might build one, by name."""

from __future__ import annotations

import base64
import hmac
import json
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from backend.common.tokens import SigningKey, TokenIssuer, public_jwk


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _seg(obj: dict[str, Any]) -> str:
    return _b64(json.dumps(obj, separators=(",", ":")).encode())


def claims(user: str, **over: Any) -> dict[str, Any]:
    now = int(time.time())
    c: dict[str, Any] = {
        "iss": "sealchat",
        "sub": user,
        "aud": ["sealchat:auth", "sealchat:chat"],
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": "forged-jti-0000000001",
        "typ": "access",
        "sid": "f" * 32,
        "role": "admin",
    }
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


def forged_tokens(issuer: TokenIssuer, user: str, refresh_token: str) -> dict[str, str]:
    """name → token. None of them may be accepted anywhere."""
    real: SigningKey = issuer._keys[0]
    kid = real.kid
    attacker = Ed25519PrivateKey.generate()
    public_pem = real.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    public_raw = real.private_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    good, _ = issuer.issue(sub=user, sid="g" * 32, role="user", audiences=["auth", "chat"])
    head, payload, sig = good.split(".")
    other, _ = issuer.issue(sub="someone", sid="o" * 32, role="user", audiences=["auth", "chat"])
    body = json.loads(base64.urlsafe_b64decode(payload + "=="))
    now = int(time.time())

    def real_signed(c: dict[str, Any], headers: dict[str, Any] | None = None) -> str:
        return jwt.encode(
            c, real.private_key, algorithm="EdDSA", headers={"kid": kid, **(headers or {})}
        )

    def hs256(secret: bytes, c: dict[str, Any]) -> str:
        signing_input = _seg({"alg": "HS256", "kid": kid, "typ": "JWT"}) + "." + _seg(c)
        mac = hmac.new(secret, signing_input.encode(), "sha256").digest()
        return signing_input + "." + _b64(mac)

    def unsigned(alg: str) -> str:
        return f"{_seg({'alg': alg, 'kid': kid, 'typ': 'JWT'})}.{_seg(claims(user))}."

    return {
        "alg none": unsigned("none"),
        "alg None": unsigned("None"),
        "alg NONE": unsigned("NONE"),
        "alg none with a signature": unsigned("none") + sig,
        "HS256 keyed with the public key PEM": hs256(public_pem, claims(user)),
        "HS256 keyed with the raw public key": hs256(public_raw, claims(user)),
        "HS256 keyed with the kid": hs256(kid.encode(), claims(user)),
        "unknown kid": jwt.encode(claims(user), attacker, algorithm="EdDSA", headers={"kid": "k1"}),
        "kid path traversal": jwt.encode(
            claims(user), attacker, algorithm="EdDSA", headers={"kid": "../../etc/passwd"}
        ),
        "no kid": jwt.encode(claims(user), attacker, algorithm="EdDSA"),
        "attacker key under the real kid": jwt.encode(
            claims(user), attacker, algorithm="EdDSA", headers={"kid": kid}
        ),
        "injected jwk": jwt.encode(
            claims(user),
            attacker,
            algorithm="EdDSA",
            headers={"kid": kid, "jwk": public_jwk(attacker.public_key())},
        ),
        "injected jku": real_signed(claims(user), {"jku": "http://127.0.0.1:1/jwks.json"}),
        "injected x5u": real_signed(claims(user), {"x5u": "http://127.0.0.1:1/cert.pem"}),
        "crit header": real_signed(claims(user), {"crit": ["exp"]}),
        "tampered payload (sub)": f"{head}.{_seg({**body, 'sub': 'admin'})}.{sig}",
        "tampered payload (role)": f"{head}.{_seg({**body, 'role': 'admin'})}.{sig}",
        "tampered payload (exp)": f"{head}.{_seg({**body, 'exp': now + 10**6})}.{sig}",
        "signature of another token": f"{head}.{payload}.{other.split('.')[2]}",
        "signature stripped": f"{head}.{payload}.",
        "expired": real_signed(claims(user, iat=now - 4000, nbf=now - 4000, exp=now - 3000)),
        "expired beyond the leeway": real_signed(
            claims(user, iat=now - 400, nbf=now - 400, exp=now - 61 - 5)
        ),
        "future nbf": real_signed(claims(user, nbf=now + 600)),
        "future iat": real_signed(claims(user, iat=now + 600, nbf=now - 1)),
        "wrong iss": real_signed(claims(user, iss="evil")),
        "missing iss": real_signed(claims(user, iss=None)),
        "wrong aud": real_signed(claims(user, aud=["sealchat:log"])),
        "aud of another system": real_signed(claims(user, aud="other:chat")),
        "missing aud": real_signed(claims(user, aud=None)),
        "typ refresh": real_signed(claims(user, typ="refresh")),
        "missing typ": real_signed(claims(user, typ=None)),
        "missing exp": real_signed(claims(user, exp=None)),
        "missing jti": real_signed(claims(user, jti=None)),
        "sid not a string": real_signed(claims(user, sid=7)),
        "refresh token as access token": refresh_token,
        "garbage": "not.a.token",
        "two segments": f"{head}.{payload}",
    }
