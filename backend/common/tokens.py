"""Access tokens: EdDSA (Ed25519) JWTs issued by auth and verified by every service.

Verification pins the algorithm, takes the key by ``kid`` from the configured key set only
(never from a ``jwk``/``jku``/``x5u`` header), and checks every claim with at most 60 s of
leeway. Only the auth service holds private keys; the others see the JWKS.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ALGORITHM = "EdDSA"
LEEWAY_SECONDS = 60
ACCESS_TYPE = "access"
AUDIENCE_PREFIX = "sealchat:"
#: Header fields that name a key by value or by reference: never honoured, always refused.
FORBIDDEN_HEADERS = frozenset({"jwk", "jku", "x5u", "x5c", "x5t", "crit"})
REQUIRED_CLAIMS = ["exp", "iat", "nbf", "iss", "aud", "sub", "jti", "typ"]


_REASONS: dict[type[Exception], str] = {
    jwt.InvalidSignatureError: "token signature does not verify",
    jwt.InvalidAudienceError: "token was not issued for this service",
    jwt.InvalidIssuerError: "token comes from another issuer",
    jwt.ImmatureSignatureError: "token is not valid yet",
    jwt.MissingRequiredClaimError: "token lacks a required claim",
    jwt.DecodeError: "malformed token",
}


class TokenError(Exception):
    """The token is not acceptable; ``str()`` is safe to show (it never echoes the token)."""


class TokenExpired(TokenError):
    pass


class UnknownKey(TokenError):
    """The token names a ``kid`` not in the key set (perhaps a key rotated in since)."""


def audience(service: str) -> str:
    return AUDIENCE_PREFIX + service


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_jwk(public_key: Ed25519PublicKey) -> dict[str, str]:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    jwk = {"crv": "Ed25519", "kty": "OKP", "x": _b64url(raw)}
    # RFC 7638 thumbprint: the kid changes exactly when the key does.
    thumb = hashlib.sha256(json.dumps(jwk, separators=(",", ":"), sort_keys=True).encode())
    return {**jwk, "kid": _b64url(thumb.digest()), "alg": ALGORITHM, "use": "sig"}


@dataclass(frozen=True, slots=True)
class SigningKey:
    private_key: Ed25519PrivateKey
    jwk: dict[str, str]

    @property
    def kid(self) -> str:
        return self.jwk["kid"]

    @classmethod
    def from_pem(cls, pem: bytes) -> SigningKey:
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("signing key must be an Ed25519 private key")
        return cls(key, public_jwk(key.public_key()))

    @classmethod
    def load(cls, path: Path) -> SigningKey:
        """Read a private key file, refusing one that others may read (it forges any user)."""
        require_private(path)
        return cls.from_pem(path.read_bytes())

    @classmethod
    def generate(cls) -> SigningKey:
        key = Ed25519PrivateKey.generate()
        return cls(key, public_jwk(key.public_key()))

    def pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def write_secret_file(path: Path, data: bytes) -> None:
    """Create ``path`` readable by its owner only, failing if it already exists."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def require_private(path: Path) -> None:
    """Raise ``PermissionError`` when group or others have any access to ``path``."""
    if path.stat().st_mode & 0o077:
        raise PermissionError(f"{path} is readable by others: chmod 600 it")


def load_or_create_key(path: Path) -> SigningKey:
    """The embedded mode's signing key: generated on first start, kept mode 0600."""
    if not path.exists():
        write_secret_file(path, SigningKey.generate().pem())
    return SigningKey.load(path)


@dataclass(frozen=True, slots=True)
class AccessClaims:
    sub: str
    jti: str
    sid: str
    """Refresh-token family (the login session) this token belongs to."""
    role: str
    exp: int
    aud: tuple[str, ...]


class TokenIssuer:
    """Signs access tokens with the first key; publishes every key (rotation overlap)."""

    def __init__(self, keys: Sequence[SigningKey], *, issuer: str, ttl_seconds: int) -> None:
        if not keys:
            raise ValueError("at least one signing key is needed")
        self._keys = list(keys)
        self.issuer = issuer
        self.ttl_seconds = ttl_seconds

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return {"keys": [k.jwk for k in self._keys]}

    def issue(
        self, *, sub: str, sid: str, role: str, audiences: Iterable[str], now: float | None = None
    ) -> tuple[str, AccessClaims]:
        iat = int(time.time() if now is None else now)
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": sub,
            "aud": [audience(a) for a in audiences],
            "iat": iat,
            "nbf": iat,
            "exp": iat + self.ttl_seconds,
            "jti": secrets.token_urlsafe(16),
            "typ": ACCESS_TYPE,
            "sid": sid,
            "role": role,
        }
        signer = self._keys[0]
        token = jwt.encode(
            claims, signer.private_key, algorithm=ALGORITHM, headers={"kid": signer.kid}
        )
        return token, AccessClaims(
            sub=sub,
            jti=claims["jti"],
            sid=sid,
            role=role,
            exp=claims["exp"],
            aud=tuple(claims["aud"]),
        )


class TokenVerifier:
    """Checks a token against a key set supplied by ``keys`` (``kid`` → JWK)."""

    def __init__(
        self, keys: Callable[[], dict[str, dict[str, str]]], *, issuer: str, service: str
    ) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience(service)

    def unverified_kid(self, token: str) -> str:
        """The ``kid`` a token names, after the header checks (to refresh a remote JWKS)."""
        return self._header(token)["kid"]

    @staticmethod
    def _header(token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenError("malformed token") from None
        if header.get("alg") != ALGORITHM:
            raise TokenError("token algorithm not accepted")
        if FORBIDDEN_HEADERS & header.keys():
            raise TokenError("token header not accepted")
        if not isinstance(header.get("kid"), str):
            raise TokenError("token has no key id")
        return header

    def verify(self, token: str) -> AccessClaims:
        header = self._header(token)
        jwk = self._keys().get(header["kid"])
        if jwk is None:
            raise UnknownKey("token signed by an unknown key")
        try:
            claims = jwt.decode(
                token,
                jwt.PyJWK(jwk, ALGORITHM).key,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": REQUIRED_CLAIMS, "strict_aud": False},
            )
        except jwt.ExpiredSignatureError:
            raise TokenExpired("token expired") from None
        except jwt.PyJWTError as exc:
            raise TokenError(_REASONS.get(type(exc), "token not accepted")) from None
        if claims.get("typ") != ACCESS_TYPE:
            raise TokenError("not an access token")
        for name in ("sub", "jti", "sid", "role"):
            if not isinstance(claims.get(name), str):
                raise TokenError(f"token claim {name} missing or not a string")
        aud = claims["aud"]
        return AccessClaims(
            sub=claims["sub"],
            jti=claims["jti"],
            sid=claims["sid"],
            role=claims["role"],
            exp=int(claims["exp"]),
            aud=tuple(aud) if isinstance(aud, list) else (aud,),
        )


def keys_by_kid(jwks: Any) -> dict[str, dict[str, str]]:
    """Index a JWKS document, keeping only Ed25519 signing keys (any other shape: none)."""
    out: dict[str, dict[str, str]] = {}
    listed = jwks.get("keys") if isinstance(jwks, dict) else None
    for key in listed if isinstance(listed, list) else []:
        if (
            isinstance(key, dict)
            and key.get("kty") == "OKP"
            and key.get("crv") == "Ed25519"
            and isinstance(key.get("kid"), str)
        ):
            out[key["kid"]] = key
    return out
