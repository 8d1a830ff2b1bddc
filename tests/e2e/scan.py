"""Read back everything the server side wrote, as bytes, to search for secrets in it.

Each reader returns ``(where, bytes)`` pairs; ``where`` names the table, collection, key, queue
or file so a finding says exactly where the leak is.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

Found = tuple[str, bytes]


def needles(secret: str | bytes) -> list[bytes]:
    """The secret as it could appear: raw, JSON-escaped, base64 (padded or not, url-safe)."""
    raw = secret.encode() if isinstance(secret, str) else secret
    forms = {raw}
    if isinstance(secret, str):
        forms.add(json.dumps(secret)[1:-1].encode())
    for enc in (base64.b64encode, base64.urlsafe_b64encode):
        forms.add(enc(raw).rstrip(b"="))
    return sorted(forms)


def hits(sources: Iterable[Found], secrets: dict[str, str | bytes]) -> list[str]:
    """``"<secret name> in <where>"`` for every secret found in any source."""
    table = {name: needles(value) for name, value in secrets.items()}
    out = []
    for where, data in sources:
        for name, forms in table.items():
            if any(form in data for form in forms):
                out.append(f"{name} in {where}")
    return out


def _bytes(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return repr(value).encode() + b"|" + str(value).encode()


def mariadb(url: str) -> Iterator[Found]:
    import pymysql
    from sqlalchemy.engine import make_url

    u = make_url(url)
    conn = pymysql.connect(
        host=u.host or "127.0.0.1", port=u.port or 3306, user=u.username or "root",
        password=u.password or "", database=u.database,
    )  # fmt: skip
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW TABLES")
            tables = [row[0] for row in cur.fetchall()]
            assert tables, "no tables: wrong database?"
            for table in tables:
                cur.execute(f"SELECT * FROM `{table}`")
                for n, row in enumerate(cur.fetchall()):
                    yield f"mariadb {table} row {n}", b"\x00".join(_bytes(v) for v in row)
    finally:
        conn.close()


def mongodb(url: str, database: str) -> Iterator[Found]:
    import bson
    import pymongo

    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(url)
    try:
        db = client[database]
        names = db.list_collection_names()
        assert names, "no collections: wrong database?"
        for name in names:
            for doc in db[name].find():
                yield f"mongodb {name} {doc.get('_id')}", bson.encode(doc) + _bytes(doc)
    finally:
        client.close()


def redis_keys(url: str, prefix: str) -> Iterator[Found]:
    import redis

    r = redis.Redis.from_url(url)
    try:
        for key in r.scan_iter(match=prefix + "*", count=1000):
            kind = r.type(key).decode()
            value: Any
            if kind == "string":
                value = r.get(key)
            elif kind == "hash":
                value = r.hgetall(key)
            elif kind == "list":
                value = r.lrange(key, 0, -1)
            elif kind == "set":
                value = r.smembers(key)
            elif kind == "zset":
                value = r.zrange(key, 0, -1, withscores=True)
            elif kind == "stream":
                value = r.xrange(key)
            else:
                value = kind
            yield f"redis {key.decode()}", key + b"\x00" + _bytes(value)
    finally:
        r.close()


def rabbitmq(url: str) -> Iterator[Found]:
    """Every message left in every queue of the vhost, read unacked (so it stays queued).

    A consumer, not ``basic.get``: quorum queues with a single active consumer refuse gets.
    """
    import pika

    queues = _queues_of(url)
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        for queue in queues:
            yield f"rabbitmq queue name {queue}", queue.encode()
            ch = conn.channel()
            for method, props, body in ch.consume(queue, auto_ack=False, inactivity_timeout=1):
                if method is None:
                    break
                yield f"rabbitmq {queue} #{method.delivery_tag}", body + _bytes(props.headers)
            ch.close()  # unacked: every message goes back to its queue
    finally:
        conn.close()


def _queues_of(url: str) -> list[str]:
    import subprocess
    from urllib.parse import unquote, urlparse

    vhost = unquote(urlparse(url).path.lstrip("/")) or "/"
    out = subprocess.run(
        ["rabbitmqctl", "list_queues", "-p", vhost, "name", "--quiet", "--no-table-headers"],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout  # fmt: skip
    return [line.strip() for line in out.splitlines() if line.strip()]


def files(root: Path) -> Iterator[Found]:
    for path in sorted(root.rglob("*")):
        if path.is_file():
            yield f"file {path}", path.read_bytes()


def lines(name: str, text: Iterable[str]) -> Iterator[Found]:
    for n, line in enumerate(text):
        yield f"{name} line {n}", line.encode()
