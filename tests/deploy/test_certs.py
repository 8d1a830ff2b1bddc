"""``sealchatd gen-certs``: the lab CA and the load balancer's certificate.

The proof is a real TLS handshake on loopback: a client that trusts only ca.crt accepts the
server for the names in the certificate and refuses any other name.
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509

from backend.common import certs


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    parser = argparse.ArgumentParser(prog="sealchatd")
    certs.add_parser(parser.add_subparsers(dest="command"))
    rc = certs.run(parser.parse_args(["gen-certs", *argv]))
    captured = capsys.readouterr()
    return rc, captured.out + captured.err


async def _handshake(tmp_path: Path, server_name: str) -> str:
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(tmp_path / "tls/server.crt", tmp_path / "tls/server.key")

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hello\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    client_ctx = ssl.create_default_context(cafile=tmp_path / "ca/ca.crt")
    try:
        async with server:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=client_ctx, server_hostname=server_name
            )
            line = await reader.readline()
            writer.close()
            await writer.wait_closed()
            return line.decode().strip()
    finally:
        server.close()


def test_makes_ca_and_certificate_then_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--ca-dir", str(tmp_path / "ca"), "--out", str(tmp_path / "tls")]
    rc, out = _run(capsys, *args, "--name", "lab.sealchat.test", "--name", "127.0.0.1")
    assert rc == 0 and out.startswith("wrote ")
    for key in (tmp_path / "ca/ca.key", tmp_path / "tls/server.key"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    first = (tmp_path / "tls/server.crt").read_bytes()

    rc, out = _run(capsys, *args, "--name", "lab.sealchat.test", "--name", "127.0.0.1")
    assert rc == 0 and out.startswith("unchanged")
    assert (tmp_path / "tls/server.crt").read_bytes() == first


def test_new_names_reissue_with_the_same_ca(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--ca-dir", str(tmp_path / "ca"), "--out", str(tmp_path / "tls")]
    _run(capsys, *args, "--name", "127.0.0.1")
    ca_before = (tmp_path / "ca/ca.crt").read_bytes()
    rc, out = _run(capsys, *args, "--name", "127.0.0.1", "--name", "chat.example.net")
    assert rc == 0 and out.startswith("wrote ")
    assert (tmp_path / "ca/ca.crt").read_bytes() == ca_before
    cert = x509.load_pem_x509_certificate((tmp_path / "tls/server.crt").read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["chat.example.net"]


async def test_tls_client_trusting_the_ca_accepts_the_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--ca-dir", str(tmp_path / "ca"), "--out", str(tmp_path / "tls")]
    _run(capsys, *args, "--name", "lab.sealchat.test", "--name", "127.0.0.1")
    assert await _handshake(tmp_path, "lab.sealchat.test") == "hello"
    assert await _handshake(tmp_path, "127.0.0.1") == "hello"
    with pytest.raises(ssl.SSLCertVerificationError):
        await _handshake(tmp_path, "other.example.net")


def test_a_certificate_from_another_ca_is_replaced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _run(capsys, "--ca-dir", str(tmp_path / "ca1"), "--out", str(tmp_path / "tls"), "--name", "x")
    rc, out = _run(
        capsys, "--ca-dir", str(tmp_path / "ca"), "--out", str(tmp_path / "tls"), "--name", "x"
    )
    assert rc == 0 and out.startswith("wrote ")
    ca = x509.load_pem_x509_certificate((tmp_path / "ca/ca.crt").read_bytes())
    cert = x509.load_pem_x509_certificate((tmp_path / "tls/server.crt").read_bytes())
    cert.verify_directly_issued_by(ca)


def test_unreadable_ca_key_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "ca").mkdir()
    (tmp_path / "ca/ca.crt").write_text("not a certificate")
    (tmp_path / "ca/ca.key").write_text("not a key")
    rc, out = _run(
        capsys, "--ca-dir", str(tmp_path / "ca"), "--out", str(tmp_path / "tls"), "--name", "x"
    )
    assert rc == 2
    assert "sealchatd gen-certs:" in out
