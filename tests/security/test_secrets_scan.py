"""No secret is committed: every file git would ship is scanned (``secret_patterns.py``).

Hard patterns (private keys, JWTs, cloud and service tokens) fail wherever they are.
Credentials in URLs and high-entropy values assigned to names like ``password`` fail
outside test fixtures, documentation examples and benchmarks. Key and database files are
refused by name. ``python -m tests.security.deep_scan`` runs detect-secrets over the same
files as a second opinion (slow: it is part of ``make fuzz``).
"""

from __future__ import annotations

import pytest

from backend.common.tokens import SigningKey, TokenIssuer
from tests.security.helpers import report
from tests.security.secret_patterns import (
    FIXTURE_PATHS,
    ROOT,
    SECRET_FILE,
    scan_text,
    shipped_files,
)

pytestmark = pytest.mark.security


def test_no_secret_in_the_repository() -> None:
    files = shipped_files()
    named = [f for f in files if SECRET_FILE.search(f)]
    hard, creds, excused, scanned = [], [], 0, 0
    for name in files:
        try:
            text = (ROOT / name).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # binary: caught by name above if it is a key or a database
        scanned += 1
        found_hard, found_creds = scan_text(name, text)
        hard += found_hard
        if name.startswith(FIXTURE_PATHS):
            excused += len(found_creds)
        else:
            creds += found_creds
    report(
        "secret scan",
        files=len(files),
        text_files=scanned,
        hard_findings=len(hard),
        credentials_outside_fixtures=len(creds),
        fixture_credentials=excused,
        key_or_db_files=len(named),
    )
    assert named == [] and hard == [] and creds == [], (named, hard, creds)


def test_the_scan_finds_planted_secrets() -> None:
    """The control: each kind of secret is found, so a clean result means something."""
    issuer = TokenIssuer([SigningKey.generate()], issuer="sealchat", ttl_seconds=60)
    token, _ = issuer.issue(sub="alice", sid="s", role="user", audiences=["chat"])
    planted = "\n".join(
        [
            SigningKey.generate().pem().decode(),
            f'TOKEN = "{token}"',
            'AWS = "' + "AKIA" + 'IOSFODNN7EXAMPL3"',
            'GH = "' + "ghp_" + "a1B2" * 9 + '"',
            'url = "mysql+aiomysql://sealchat:' + "Hx7kP2qLm9Zr4Tn8" + '@db.internal/sealchat"',
            'db_password = "' + "Hx7kP2qLm9Zr4Tn8" + '"',
            'fine = "mysql+aiomysql://user:pass@host/db"  # a placeholder',
            'password_field = "passwd_confirm"  # an identifier',
        ]
    )
    hard, creds = scan_text("planted.py", planted)
    assert {f.kind for f in hard} == {"private key", "JWT", "AWS key id", "GitHub token"}
    assert {f.kind for f in creds} == {"URL credentials", "assigned secret"}
    last = planted.count("\n") + 1
    assert not [f for f in creds if f.line >= last - 1], "placeholders and identifiers pass"
