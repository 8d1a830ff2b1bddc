"""detect-secrets over every file git would ship: the slow second opinion (``make fuzz``).

    .venv/bin/python -m tests.security.deep_scan

Exit status 1 when a finding is not explained. Explained: a heuristic finding (keyword,
``user:pass@``, high entropy) in test fixtures, docs or benchmarks, or whose value is a
visible placeholder (a template reference, a word like ``pass``, prose, a Zabbix ``uuid``).
Every other plugin's finding (private keys, JWTs, cloud tokens) is never explained.
"""

from __future__ import annotations

import re
import sys

from detect_secrets import SecretsCollection
from detect_secrets.settings import default_settings

from tests.security.secret_patterns import FIXTURE_PATHS, ROOT, shipped_files

HEURISTIC = {
    "Secret Keyword",
    "Basic Auth Credentials",
    "Base64 High Entropy String",
    "Hex High Entropy String",
    "Public IP (ipv4)",
}
PLACEHOLDERS = {"pass", "password", "on_create", "always", "changeme"}


def placeholder(value: str, line: str) -> bool:
    value = value.strip().strip(",")
    return (
        value.lower() in PLACEHOLDERS
        or "{{" in line
        or value.startswith("vault_")
        or " " in value  # prose, not a credential
        or re.match(r"\s*-?\s*uuid:\s", line) is not None  # Zabbix object ids
    )


def main() -> int:
    files = shipped_files()
    found = SecretsCollection(root=str(ROOT))
    with default_settings():
        found.scan_files(*files)
    unexplained, explained = [], 0
    for name, secret in found:
        line = (ROOT / name).read_text(errors="replace").splitlines()[secret.line_number - 1]
        if secret.type in HEURISTIC and (
            name.startswith(FIXTURE_PATHS) or placeholder(secret.secret_value or "", line)
        ):
            explained += 1
        else:
            unexplained.append(f"{name}:{secret.line_number}: {secret.type}")
    print(f"detect-secrets: {len(files)} files, {explained} explained, {len(unexplained)} not")
    for item in unexplained:
        print("  " + item)
    return 1 if unexplained else 0


if __name__ == "__main__":
    sys.exit(main())
