"""atheris target: token verification refuses every input it did not issue, and never crashes.

    .venv/bin/python tests/security/fuzz/fuzz_jwt.py -max_total_time=300   # make fuzz
    .venv/bin/python tests/security/fuzz/fuzz_jwt.py -runs=5000           # a smoke run

Half of the inputs are raw text; the other half splice fuzz bytes into a real token's header,
payload or signature, which is where a verifier's parsing is most exposed. The only allowed
outcome is ``TokenError``; an accepted token, or any other exception, is a finding.
"""

from __future__ import annotations

import base64
import sys

import atheris
import jwt  # noqa: F401 - imported first, so only sealchat's own modules are instrumented
import pydantic  # noqa: F401

with atheris.instrument_imports():
    from backend.common.tokens import (
        SigningKey,
        TokenError,
        TokenIssuer,
        TokenVerifier,
        keys_by_kid,
    )

KEY = SigningKey.generate()
ISSUER = TokenIssuer([KEY], issuer="sealchat", ttl_seconds=900)
VERIFIER = TokenVerifier(lambda: keys_by_kid(ISSUER.jwks()), issuer="sealchat", service="chat")
REAL, _ = ISSUER.issue(sub="alice", sid="s" * 32, role="user", audiences=["chat"])
PARTS = REAL.split(".")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    mode = fdp.ConsumeIntInRange(0, 3)
    if mode == 0:
        token = fdp.ConsumeUnicodeNoSurrogates(4096)
    else:
        parts = list(PARTS)
        # mode 1: header, 2: payload, 3: signature replaced by fuzz bytes (well-formed base64)
        parts[mode - 1] = _b64(fdp.ConsumeBytes(fdp.remaining_bytes()))
        token = ".".join(parts)
    if token == REAL:
        return
    try:
        VERIFIER.verify(token)
    except TokenError:
        return
    raise AssertionError(f"accepted a token it did not issue: {token[:200]!r}")


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
