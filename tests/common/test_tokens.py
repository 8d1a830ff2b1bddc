"""Token issuing and verification below the HTTP layer: claims, rotation, key files."""

from __future__ import annotations

import os
import time

import pytest

from backend.common.tokens import (
    SigningKey,
    TokenError,
    TokenExpired,
    TokenIssuer,
    TokenVerifier,
    keys_by_kid,
    load_or_create_key,
)


def verifier_for(issuer: TokenIssuer, service: str = "chat") -> TokenVerifier:
    return TokenVerifier(lambda: keys_by_kid(issuer.jwks()), issuer="sealchat", service=service)


def test_kid_is_the_key_thumbprint():
    k = SigningKey.generate()
    assert SigningKey.from_pem(k.pem()).kid == k.kid
    assert SigningKey.generate().kid != k.kid


def test_rotation_overlap_keeps_old_tokens_valid_and_signs_with_the_new_key():
    old, new = SigningKey.generate(), SigningKey.generate()
    before = TokenIssuer([old], issuer="sealchat", ttl_seconds=60)
    old_token, _ = before.issue(sub="a", sid="s", role="user", audiences=["chat"])
    during = TokenIssuer([new, old], issuer="sealchat", ttl_seconds=60)
    new_token, _ = during.issue(sub="a", sid="s", role="user", audiences=["chat"])
    v = verifier_for(during)
    assert v.verify(old_token).sub == v.verify(new_token).sub == "a"
    assert v.unverified_kid(new_token) == new.kid
    after = TokenIssuer([new], issuer="sealchat", ttl_seconds=60)
    with pytest.raises(TokenError, match="unknown key"):
        verifier_for(after).verify(old_token)


def test_leeway_is_at_most_sixty_seconds():
    issuer = TokenIssuer([SigningKey.generate()], issuer="sealchat", ttl_seconds=30)
    now = time.time()
    within, _ = issuer.issue(sub="a", sid="s", role="user", audiences=["chat"], now=now - 80)
    beyond, _ = issuer.issue(sub="a", sid="s", role="user", audiences=["chat"], now=now - 95)
    assert verifier_for(issuer).verify(within).sub == "a"
    with pytest.raises(TokenExpired):
        verifier_for(issuer).verify(beyond)


def test_audience_is_per_service():
    issuer = TokenIssuer([SigningKey.generate()], issuer="sealchat", ttl_seconds=60)
    token, _ = issuer.issue(sub="a", sid="s", role="user", audiences=["auth", "chat"])
    assert verifier_for(issuer, "auth").verify(token)
    with pytest.raises(TokenError):
        verifier_for(issuer, "log").verify(token)


def test_embedded_key_file_is_private(tmp_path):
    path = tmp_path / "secrets" / "jwt.pem"
    key = load_or_create_key(path)
    assert (path.stat().st_mode & 0o777) == 0o600
    assert load_or_create_key(path).kid == key.kid, "kept across restarts"
    os.chmod(path, 0o644)
    with pytest.raises(PermissionError, match="chmod 600"):
        load_or_create_key(path)
