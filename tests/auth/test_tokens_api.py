"""Access and refresh tokens at the REST edge: forgeries refused, rotation, reuse, logout."""

from __future__ import annotations

import base64
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from backend.common.tokens import public_jwk
from backend.common.typedefs import AUTH_SERVICE


def _b64(d: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()


def _claims(uid: str, **over) -> dict:
    now = int(time.time())
    c = {
        "iss": "sealchat",
        "sub": uid,
        "aud": ["sealchat:auth"],
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": "j" * 16,
        "typ": "access",
        "sid": "s" * 32,
        "role": "user",
    }
    c.update(over)
    return c


def _hs256(secret: bytes, kid: str, claims: dict) -> str:
    """The classic key-confusion forgery: HMAC keyed with the server's public key."""
    signing_input = _b64({"alg": "HS256", "kid": kid, "typ": "JWT"}) + "." + _b64(claims)
    mac = hmac.new(secret, signing_input.encode(), "sha256").digest()
    return signing_input + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def forged_tokens(client, uid: str) -> dict[str, str]:
    issuer = client.app[AUTH_SERVICE].issuer
    real = issuer._keys[0]
    kid = real.kid
    attacker = Ed25519PrivateKey.generate()
    public_pem = real.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    good, _ = issuer.issue(sub=uid, sid="s" * 32, role="user", audiences=["auth"])
    head, payload, sig = good.split(".")
    tampered = json.loads(base64.urlsafe_b64decode(payload + "=="))
    tampered["sub"] = "admin"
    now = int(time.time())

    def signed(claims: dict, headers: dict | None = None, key=None) -> str:
        return jwt.encode(
            claims,
            key or real.private_key,
            algorithm="EdDSA",
            headers={"kid": kid, **(headers or {})},
        )

    return {
        "alg none": f"{_b64({'alg': 'none', 'kid': kid})}.{_b64(_claims(uid))}.",
        "HS256 with the public key": _hs256(public_pem, kid, _claims(uid)),
        "unknown kid": jwt.encode(
            _claims(uid), attacker, algorithm="EdDSA", headers={"kid": "nope"}
        ),
        "attacker key, real kid": jwt.encode(
            _claims(uid), attacker, algorithm="EdDSA", headers={"kid": kid}
        ),
        "injected jwk": jwt.encode(
            _claims(uid),
            attacker,
            algorithm="EdDSA",
            headers={"kid": kid, "jwk": public_jwk(attacker.public_key())},
        ),
        "injected jku": signed(_claims(uid), {"jku": "https://attacker.invalid/jwks.json"}),
        "tampered payload": f"{head}.{_b64(tampered)}.{sig}",
        "expired": signed(_claims(uid, exp=now - 120, iat=now - 400, nbf=now - 400)),
        "not yet valid": signed(_claims(uid, nbf=now + 600)),
        "wrong issuer": signed(_claims(uid, iss="someone-else")),
        "wrong audience": signed(_claims(uid, aud=["sealchat:chat"])),
        "refresh typ": signed(_claims(uid, typ="refresh")),
        "missing jti": signed({k: v for k, v in _claims(uid).items() if k != "jti"}),
        "garbage": "not.a.token",
        "empty": "",
    }


async def test_every_forged_token_is_refused(client, signup):
    acct = await signup()
    r = await client.get(f"/auth/getuser/{acct.id}", headers=acct.auth)
    assert r.status == 200  # the control: a real token works
    accepted = []
    for name, token in forged_tokens(client, acct.id).items():
        r = await client.get(
            f"/auth/getuser/{acct.id}", headers={"Authorization": f"Bearer {token}"}
        )
        if r.status != 401:
            accepted.append((name, r.status))
        body = await r.json()
        assert body["error"]["code"] in {"unauthorized", "token_expired"}, name
    assert accepted == []


async def test_token_claims(client, signup):
    acct = await signup()
    header = jwt.get_unverified_header(acct.token)
    claims = jwt.decode(acct.token, options={"verify_signature": False})
    assert header["alg"] == "EdDSA" and header["kid"]
    assert set(claims) >= {"iss", "aud", "sub", "exp", "iat", "nbf", "jti", "typ"}
    assert claims["sub"] == acct.id and claims["typ"] == "access"
    assert claims["exp"] - claims["iat"] == 900
    assert "sealchat:log" not in claims["aud"], "only admins get the log service's audience"


async def test_jwks_publishes_the_signing_key(client, signup):
    acct = await signup()
    r = await client.get("/auth/.well-known/jwks.json")
    keys = (await r.json())["keys"]
    kid = jwt.get_unverified_header(acct.token)["kid"]
    key = next(k for k in keys if k["kid"] == kid)
    assert "d" not in key, "never publish the private part"
    jwt.decode(acct.token, jwt.PyJWK(key).key, algorithms=["EdDSA"], audience="sealchat:auth")


async def test_refresh_rotates_and_reuse_ends_the_session(client, signup):
    acct = await signup()
    first_refresh, first_access = acct.refresh, acct.token
    r = await client.post("/auth/refresh", json={"refresh_token": first_refresh})
    assert r.status == 200
    rotated = await r.json()
    assert rotated["refresh_token"] != first_refresh and rotated["token"] != first_access

    # The thief replays the spent token: refused, and the whole family is revoked.
    r = await client.post("/auth/refresh", json={"refresh_token": first_refresh})
    assert (r.status, (await r.json())["error"]["code"]) == (401, "refresh_reused")
    r = await client.post("/auth/refresh", json={"refresh_token": rotated["refresh_token"]})
    assert r.status == 401, "the legitimate successor dies with its family"
    r = await client.get(
        f"/auth/getuser/{acct.id}", headers={"Authorization": f"Bearer {rotated['token']}"}
    )
    assert r.status == 401, "access tokens of the ended session are denied"


async def test_unknown_refresh_token(client):
    r = await client.post("/auth/refresh", json={"refresh_token": "x" * 43})
    assert r.status == 401


async def test_logout_denies_the_token_and_the_session(client, signup):
    acct = await signup()
    other_session = await signup()
    r = await client.post("/auth/logout", headers=acct.auth)
    assert r.status == 200
    r = await client.get(f"/auth/getuser/{acct.id}", headers=acct.auth)
    assert r.status == 401
    r = await client.post("/auth/refresh", json={"refresh_token": acct.refresh})
    assert r.status == 401
    r = await client.get(f"/auth/getuser/{acct.id}", headers=other_session.auth)
    assert r.status == 200, "other sessions are unaffected"


@pytest.mark.parametrize("header", ["Basic abc", "Bearer", "Bearer    ", "token abc"])
async def test_malformed_authorization_headers(client, header):
    r = await client.get("/auth/getuser/someone", headers={"Authorization": header})
    assert r.status == 401
