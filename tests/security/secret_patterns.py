"""What a committed secret looks like: the patterns the repository scan looks for.

Hard patterns are never acceptable anywhere. Credential patterns (``user:pass@`` in a URL,
``password = "…"``) are acceptable only in test fixtures, documentation examples and
benchmarks, or when the value is a visible placeholder.
"""

from __future__ import annotations

import math
import re
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: Where made-up credentials belong: fixtures, examples in docs, benchmark accounts.
FIXTURE_PATHS = ("tests/", "docs/", "bench/", "README.md")
SECRET_FILE = re.compile(
    r"(^|/)(id_rsa|id_ed25519|.*\.(pem|key|p12|pfx|jks|keystore|sqlite3?|db)|\.env(\..*)?)$"
)


def shipped_files() -> list[str]:
    """Tracked files plus new ones not ignored: what the next commit can contain."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [f for f in out.splitlines() if f and (ROOT / f).is_file()]


HARD = {
    "private key": re.compile(r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY(?: BLOCK)?-----"),
    "JWT": re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}"),
    "AWS key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})"),
    "GitLab token": re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}"),
    "Slack token": re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    "Stripe key": re.compile(r"\b[rs]k_live_[A-Za-z0-9]{20,}"),
    "PyPI token": re.compile(r"\bpypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,}"),
    "npm token": re.compile(r"\bnpm_[A-Za-z0-9]{36}\b"),
    "API key (sk-)": re.compile(r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{32,}"),
    "Google API key": re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),
}
URL_CREDENTIALS = re.compile(r"\b[a-z][a-z0-9+.-]*://([^:@/\s'\"`]+):([^@/\s'\"`]*)@")
ASSIGNED = re.compile(
    r"(?i)\b[a-z_]*(?:password|passwd|secret|api_?key|access_?key|private_?key|token)\b"
    r"[\"']?\s*[:=]\s*[\"']([^\"'\s]{12,})[\"']"
)
PLACEHOLDER = re.compile(
    r"^(?:pass|password|secret|changeme|x+|\*+|\.\.\.|…|<[^>]*>|\$\{[^}]*\}|\{\{.*|%\(.*|"
    r"\{[a-z_.]*\}|[A-Z_]+)$"
)


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    kind: str


def entropy(value: str) -> float:
    counts = Counter(value)
    return -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())


def looks_random(value: str) -> bool:
    """A credential rather than an identifier: mixed classes and high entropy."""
    classes = sum(bool(re.search(p, value)) for p in (r"[a-z]", r"[A-Z]", r"[0-9]"))
    return classes >= 2 and entropy(value) >= 3.0 and not re.fullmatch(r"[a-z_.]+", value)


def scan_text(path: str, text: str) -> tuple[list[Finding], list[Finding]]:
    """(hard findings, credential findings) in one file's text."""
    hard: list[Finding] = []
    creds: list[Finding] = []
    for number, line in enumerate(text.splitlines(), 1):
        hard += [Finding(path, number, kind) for kind, rx in HARD.items() if rx.search(line)]
        for match in URL_CREDENTIALS.finditer(line):
            if match.group(2) and not PLACEHOLDER.match(match.group(2)):
                creds.append(Finding(path, number, "URL credentials"))
        for match in ASSIGNED.finditer(line):
            value = match.group(1)
            if not PLACEHOLDER.match(value) and looks_random(value):
                creds.append(Finding(path, number, "assigned secret"))
    return hard, creds
