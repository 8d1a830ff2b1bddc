"""The ciphertext-only proof: after real traffic through the whole cluster stack, nothing the
server side wrote holds a message, a file, a password or a token.

Canary plaintexts (1:1, group, a disappearing one) and a canary file go through MariaDB,
MongoDB, Redis and RabbitMQ with the real crypto; then every table, collection, key under the
session's prefix, message left in every queue of the vhost (the event log among them), every
file under the server's data dir and every log line the processes wrote are searched for the
canaries (raw, JSON-escaped, base64), the passwords and the tokens.
"""

from __future__ import annotations

import io
import logging
import uuid

import pytest

from backend.common.logs import JsonFormatter
from tests.e2e import scan
from tests.e2e.harness import Party, befriend, group, party
from tui.client.files import download_file, upload_file

CLUSTER = pytest.param(
    "cluster",
    marks=[pytest.mark.mariadb, pytest.mark.redis, pytest.mark.rabbitmq, pytest.mark.mongo],
)


@pytest.fixture
def server_log():
    """Every log record of the process, formatted as the services write them."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    watched = [logging.getLogger(n) for n in ("sealchat", "aiohttp")]
    levels = [lg.level for lg in watched]
    root.addHandler(handler)
    for lg in watched:
        lg.setLevel(logging.DEBUG)
    try:
        yield buffer
    finally:
        root.removeHandler(handler)
        for lg, level in zip(watched, levels, strict=True):
            lg.setLevel(level)


@pytest.mark.parametrize("make_settings", [CLUSTER], indirect=True)
async def test_the_server_side_holds_ciphertext_only(
    server, server_log, make_settings, mariadb_url, redis_url, rabbitmq_url, tmp_path
):
    canary = {f"canary {n}": f"CANARY-{n}-{uuid.uuid4().hex}" for n in range(4)}
    a, b, c = [await party(server, tmp_path) for _ in range(3)]
    parties: list[Party] = [a, b, c]
    try:
        await befriend(a, b)
        direct = (await a.client.rooms.direct(b.id))["id"]
        room = await group(a, b, c, name="canary room")
        await a.client.send(direct, {"body": canary["canary 0"]})
        await b.client.send(room, {"body": canary["canary 1"]})
        await c.client.send(room, {"body": canary["canary 2"]}, ttl=3600)
        secret_file = tmp_path / "canary.txt"
        file_canary = f"FILE-CANARY-{uuid.uuid4().hex}".encode()
        secret_file.write_bytes(file_canary * 500)
        await a.client.send(room, await upload_file(a.client.api, room, secret_file))
        await a.client.send(direct, {"body": canary["canary 3"]})
        for p, where, count in ((b, direct, 2), (a, room, 3), (c, room, 3), (b, room, 3)):
            await p.seen.until(lambda p=p, w=where, n=count: len(p.seen.shown(w)) == n)
        # The plaintexts did arrive: the proof is about where they went, not that they got lost.
        assert b.texts(direct) == [canary["canary 0"], canary["canary 3"]]
        assert c.texts(room)[:2] == [canary["canary 1"], canary["canary 2"]]
        got = tmp_path / "got.txt"
        await download_file(c.client.api, c.latest(room).content, got)
        assert got.read_bytes() == secret_file.read_bytes()

        # Sessions at work: a refresh and a logout pass tokens through the server too.
        tokens = []
        for p in parties:
            assert p.client.keeper.tokens is not None
            tokens.append(p.client.keeper.tokens)
            tokens.append(await p.client.keeper.refresh())
        ciphertexts = [m.ciphertext for m in await a.client.history(room, after=0)]
        await c.client.logout()
    finally:
        for p in parties:
            await p.close()
    await server.close()  # every store flushed and closed: what is on disk is all there is

    secrets: dict[str, str | bytes] = dict(canary)
    secrets["file canary"] = file_canary
    secrets["password"] = "correct horse battery staple"
    for n, t in enumerate(tokens):
        secrets[f"access token {n}"] = t.access
        secrets[f"access token {n} signature"] = t.access.rsplit(".", 1)[1]
        secrets[f"refresh token {n}"] = t.refresh

    cfg = make_settings()
    sources = [
        *scan.mariadb(mariadb_url),
        *scan.mongodb(_plain(cfg.mongo.url), cfg.mongo.database),
        *scan.redis_keys(redis_url, cfg.redis.prefix),
        *scan.rabbitmq(rabbitmq_url),
        *(scan.files(cfg.data_dir) if cfg.data_dir.exists() else ()),
        *scan.lines("server log", server_log.getvalue().splitlines()),
    ]
    where = {w.split(" ")[0] for w, _ in sources}
    assert {"mariadb", "mongodb", "redis", "rabbitmq", "server"} <= where, where
    # The scanners do see the traffic: user ids in the database, the ciphertext in MongoDB,
    # the blobs, the event log records in the queue. Otherwise "nothing found" would prove nothing.
    known = {"user id": a.id, "ciphertext": ciphertexts[0], "event": '"category"'}
    found = scan.hits(sources, known)
    assert any(f.startswith("user id in mariadb") for f in found), found
    assert any(f.startswith("ciphertext in mongodb messages") for f in found), found
    assert any(f.startswith("event in rabbitmq sealchat.events") for f in found), found
    assert any(w.startswith("mongodb blob_chunks") for w, _ in sources)
    assert len(server_log.getvalue().splitlines()) > 20

    leaks = scan.hits(sources, secrets)
    assert leaks == [], leaks

    # The clients' own stores keep history and tokens sealed under the passphrase too.
    at_rest = [*scan.files(tmp_path)]
    at_rest = [(w, d) for w, d in at_rest if w.endswith((".sqlite3", ".sqlite3-wal"))]
    assert at_rest
    assert scan.hits(at_rest, secrets) == []


def _plain(value: object) -> str:
    """A settings URL (a ``SecretStr`` when it may hold a password) as text."""
    reveal = getattr(value, "get_secret_value", None)
    return str(reveal() if reveal else value)
