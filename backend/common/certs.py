"""A private CA and server certificates for a lab or a closed deployment (``sealchatd gen-certs``).

Why the project makes its own: the Vagrant and CI labs have no public name and no way to reach
an ACME server, yet the load balancer must speak TLS and the client must verify it. The CA
stays with the operator (its key never leaves ``ca_dir``); clients trust ``ca.crt``.

Everything is X.509 from ``cryptography`` with ECDSA P-256 keys and SHA-256 signatures. Running
it again changes nothing while the certificate still covers the names, is signed by the CA and
has more than ``renew_days`` left, so a configuration tool can run it on every converge.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import sys
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from backend.common.tokens import write_secret_file

CA_KEY, CA_CERT = "ca.key", "ca.crt"
CA_DAYS = 3650


@dataclass(frozen=True)
class CertResult:
    """What ``ensure_server_cert`` did, for the one line the command prints."""

    ca_created: bool
    cert_written: bool
    cert_path: Path
    key_path: Path
    ca_path: Path


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _san(names: list[str]) -> list[x509.GeneralName]:
    """DNS names and IP addresses, each as the SAN type a TLS client matches it against."""
    out: list[x509.GeneralName] = []
    for name in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            out.append(x509.DNSName(name))
    return out


def _load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path}: not an EC private key; remove it or choose another --ca-dir")
    return key


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_public(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    """Keys are written 0600 and never overwritten in place (a replaced key is a new file)."""
    path.unlink(missing_ok=True)
    write_secret_file(path, _key_pem(key))


def ensure_ca(ca_dir: Path, common_name: str = "sealchat lab CA") -> bool:
    """Create the CA in ``ca_dir`` unless it is there; True when it was created."""
    key_path, cert_path = ca_dir / CA_KEY, ca_dir / CA_CERT
    if key_path.exists() and cert_path.exists():
        return False
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    ca_dir.mkdir(parents=True, exist_ok=True)
    _write_key(key_path, key)
    _write_public(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return True


def _still_good(cert_path: Path, ca: x509.Certificate, names: list[str], renew_days: int) -> bool:
    """The existing certificate is signed by ``ca``, names exactly ``names`` and is not ageing."""
    try:
        cert = _load_cert(cert_path)
        cert.verify_directly_issued_by(ca)
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
        return False
    if set(sans) != set(_san(names)):
        return False
    return cert.not_valid_after_utc - _now() > dt.timedelta(days=renew_days)


def ensure_server_cert(
    out_dir: Path,
    names: list[str],
    ca_dir: Path,
    *,
    days: int = 397,
    renew_days: int = 30,
    basename: str = "server",
) -> CertResult:
    """Make (or keep) ``out_dir/<basename>.crt`` and ``.key`` for ``names``, signed by the CA."""
    if not names:
        raise ValueError("give at least one --name (a DNS name or an IP address)")
    ca_created = ensure_ca(ca_dir)
    ca_cert = _load_cert(ca_dir / CA_CERT)
    cert_path, key_path = out_dir / f"{basename}.crt", out_dir / f"{basename}.key"
    result = CertResult(ca_created, False, cert_path, key_path, ca_dir / CA_CERT)
    if key_path.exists() and _still_good(cert_path, ca_cert, names, renew_days):
        return result
    ca_key = _load_key(ca_dir / CA_KEY)
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(_san(names)), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write_key(key_path, key)
    _write_public(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return CertResult(ca_created, True, cert_path, key_path, ca_dir / CA_CERT)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``gen-certs`` sub-command's arguments (``sealchatd gen-certs --help``)."""
    p = sub.add_parser(
        "gen-certs", help="make a lab CA (once) and a TLS server certificate signed by it"
    )
    p.add_argument("--out", type=Path, required=True, help="directory for server.crt/.key")
    p.add_argument("--ca-dir", type=Path, required=True, help="directory of ca.crt/ca.key")
    p.add_argument(
        "--name",
        action="append",
        required=True,
        dest="names",
        metavar="NAME",
        help="DNS name or IP address the certificate is for (repeat for several)",
    )
    p.add_argument("--days", type=int, default=397, help="validity (default 397 days)")
    p.add_argument("--basename", default="server", help="file name stem (default server)")


def run(args: argparse.Namespace) -> int:
    """Run ``gen-certs``; the printed line starts with ``wrote`` only when something changed."""
    try:
        res = ensure_server_cert(
            args.out, args.names, args.ca_dir, days=args.days, basename=args.basename
        )
    except (OSError, ValueError) as exc:
        print(f"sealchatd gen-certs: {exc}", file=sys.stderr)
        return 2
    if res.cert_written or res.ca_created:
        made = [str(p) for p, new in ((res.ca_path, res.ca_created), (res.cert_path, True)) if new]
        print(f"wrote {', '.join(made)} (clients trust {res.ca_path})")
    else:
        print(f"unchanged: {res.cert_path} is valid for {', '.join(args.names)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m backend.common.certs gen-certs ...``: the same command without the server."""
    parser = argparse.ArgumentParser(prog="sealchat-certs")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
