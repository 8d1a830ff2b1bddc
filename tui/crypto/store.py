"""The profile's local store: one SQLite file holding the device account, sessions, trust,
replay records, the decrypted history cache and the outbox.

Secrets never touch the file in the clear: each secret row is sealed (``aead.SecretBox``) with
associated data ``table|row id``. Plain columns hold only what the server knows anyway (room
ids, seqs, message ids) or what is needed to find rows.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tui.crypto.aead import KdfParams, SealError, SecretBox, derive_kek, subkey
from tui.crypto.errors import StoreCorrupt, WrongPassphrase

MIGRATIONS: list[str] = [
    # 1: the first schema.
    """
    CREATE TABLE meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
    CREATE TABLE secrets (kind TEXT NOT NULL, name TEXT NOT NULL, blob BLOB NOT NULL,
                          PRIMARY KEY (kind, name));
    CREATE TABLE outbox (msg_id TEXT PRIMARY KEY, room TEXT NOT NULL, blob BLOB NOT NULL,
                         created REAL NOT NULL);
    CREATE TABLE sync_state (room TEXT PRIMARY KEY, seq INTEGER NOT NULL);
    CREATE TABLE history (room TEXT NOT NULL, seq INTEGER NOT NULL, blob BLOB NOT NULL,
                          PRIMARY KEY (room, seq));
    CREATE TABLE replay (session_id TEXT NOT NULL, idx INTEGER NOT NULL, room TEXT NOT NULL,
                         seq INTEGER NOT NULL, PRIMARY KEY (session_id, idx));
    CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
]
_DK_AAD = b"sealchat-store|data-key|v1"


@dataclass(frozen=True)
class OutboxItem:
    msg_id: str
    room: str
    body: bytes
    created: float


class LocalStore:
    """Open with :meth:`open`; every public method commits unless inside :meth:`transaction`."""

    def __init__(self, conn: sqlite3.Connection, path: Path, data_key: bytes) -> None:
        self._conn = conn
        self.path = path
        self._data_key = data_key
        self._box = SecretBox(data_key)
        self.pickle_key = subkey(data_key, "sealchat vodozemac pickle v1")
        self._depth = 0

    # -- opening -------------------------------------------------------------------------

    @staticmethod
    def exists(path: Path | str) -> bool:
        return Path(path).is_file()

    @classmethod
    def open(cls, path: Path | str, passphrase: str, *, kdf: KdfParams | None = None) -> LocalStore:
        """Open (or create) the store; a wrong passphrase raises :class:`WrongPassphrase`."""
        if not passphrase:
            raise ValueError("the local store needs a passphrase: there is no default key")
        path = Path(path)
        fresh = not path.exists()
        if fresh:
            path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA foreign_keys=ON")
            _migrate(conn)
            data_key = _unlock(conn, str(path), passphrase, kdf or KdfParams())
        except BaseException:
            conn.close()
            raise
        return cls(conn, path, data_key)

    def close(self) -> None:
        self._conn.close()

    def change_passphrase(self, new: str) -> None:
        params = KdfParams(**json.loads(self._meta("kdf")))
        salt = os.urandom(16)
        kek = derive_kek(new, salt, params)
        with self.transaction():
            self._set_meta("salt", salt)
            self._set_meta("data_key", SecretBox(kek).seal(self._data_key, _DK_AAD))

    # -- transactions and sealing ----------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes so a crash leaves all or none of them (nests; outermost commits)."""
        if self._depth == 0:
            self._conn.execute("BEGIN IMMEDIATE")
        self._depth += 1
        try:
            yield
        except BaseException:
            self._depth -= 1
            if self._depth == 0:
                self._conn.execute("ROLLBACK")
            raise
        self._depth -= 1
        if self._depth == 0:
            self._conn.execute("COMMIT")

    def seal(self, table: str, row: str, plaintext: bytes) -> bytes:
        return self._box.seal(plaintext, f"{table}|{row}".encode())

    def unseal(self, table: str, row: str, blob: bytes) -> bytes:
        try:
            return self._box.open(blob, f"{table}|{row}".encode())
        except SealError as exc:
            raise StoreCorrupt(
                f"{self.path}: row {table}|{row} failed authentication; the file was changed "
                "outside sealchat: restore it from a backup or start a new profile"
            ) from exc

    # -- generic sealed key/value (used by the engine) -------------------------------------

    def put_secret(self, kind: str, name: str, value: bytes) -> None:
        blob = self.seal("secrets", f"{kind}|{name}", value)
        self._write(
            "INSERT OR REPLACE INTO secrets (kind, name, blob) VALUES (?, ?, ?)", (kind, name, blob)
        )

    def get_secret(self, kind: str, name: str) -> bytes | None:
        row = self._conn.execute(
            "SELECT blob FROM secrets WHERE kind = ? AND name = ?", (kind, name)
        ).fetchone()
        return None if row is None else self.unseal("secrets", f"{kind}|{name}", row[0])

    def secrets(self, kind: str, prefix: str = "") -> list[tuple[str, bytes]]:
        rows = self._conn.execute(
            "SELECT name, blob FROM secrets WHERE kind = ? AND substr(name, 1, ?) = ? "
            "ORDER BY name",
            (kind, len(prefix), prefix),
        ).fetchall()
        return [(n, self.unseal("secrets", f"{kind}|{n}", b)) for n, b in rows]

    def delete_secret(self, kind: str, name: str) -> None:
        self._write("DELETE FROM secrets WHERE kind = ? AND name = ?", (kind, name))

    def put_json(self, kind: str, name: str, value: Any) -> None:
        self.put_secret(kind, name, json.dumps(value, separators=(",", ":")).encode())

    def get_json(self, kind: str, name: str) -> Any:
        raw = self.get_secret(kind, name)
        return None if raw is None else json.loads(raw)

    # -- outbox ------------------------------------------------------------------------------

    def outbox_put(self, msg_id: str, room: str, body: bytes) -> None:
        blob = self.seal("outbox", msg_id, body)
        self._write(
            "INSERT OR REPLACE INTO outbox (msg_id, room, blob, created) VALUES (?, ?, ?, ?)",
            (msg_id, room, blob, time.time()),
        )

    def outbox_list(self) -> list[OutboxItem]:
        rows = self._conn.execute(
            "SELECT msg_id, room, blob, created FROM outbox ORDER BY created, rowid"
        ).fetchall()
        return [OutboxItem(m, r, self.unseal("outbox", m, b), c) for m, r, b, c in rows]

    def outbox_remove(self, msg_id: str) -> None:
        self._write("DELETE FROM outbox WHERE msg_id = ?", (msg_id,))

    # -- sync state ---------------------------------------------------------------------------

    def set_last_seq(self, room: str, seq: int) -> None:
        self._write("INSERT OR REPLACE INTO sync_state (room, seq) VALUES (?, ?)", (room, seq))

    def last_seq(self, room: str) -> int:
        row = self._conn.execute("SELECT seq FROM sync_state WHERE room = ?", (room,)).fetchone()
        return 0 if row is None else int(row[0])

    def all_last_seqs(self) -> dict[str, int]:
        return dict(self._conn.execute("SELECT room, seq FROM sync_state").fetchall())

    # -- decrypted history cache -----------------------------------------------------------------

    def history_put(self, room: str, seq: int, entry: dict[str, Any]) -> None:
        blob = self.seal("history", f"{room}|{seq}", json.dumps(entry).encode())
        self._write(
            "INSERT OR REPLACE INTO history (room, seq, blob) VALUES (?, ?, ?)", (room, seq, blob)
        )

    def history(
        self, room: str, *, before: int | None = None, limit: int = 100
    ) -> list[tuple[int, dict[str, Any]]]:
        rows = self._conn.execute(
            "SELECT seq, blob FROM history WHERE room = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
            (room, before if before is not None else 2**62, limit),
        ).fetchall()
        out = [(s, json.loads(self.unseal("history", f"{room}|{s}", b))) for s, b in rows]
        return out[::-1]

    def history_delete(self, room: str, seqs: Iterable[int]) -> None:
        with self.transaction():
            for seq in seqs:
                self._conn.execute("DELETE FROM history WHERE room = ? AND seq = ?", (room, seq))

    # -- replay store (plain: session ids and indexes reveal nothing the server lacks) ----------

    def replay_seen(self, session_id: str, index: int) -> tuple[str, int] | None:
        row = self._conn.execute(
            "SELECT room, seq FROM replay WHERE session_id = ? AND idx = ?", (session_id, index)
        ).fetchone()
        return None if row is None else (str(row[0]), int(row[1]))

    def replay_record(self, session_id: str, index: int, room: str, seq: int) -> None:
        self._write(
            "INSERT OR IGNORE INTO replay (session_id, idx, room, seq) VALUES (?, ?, ?, ?)",
            (session_id, index, room, seq),
        )

    # -- small plain settings ----------------------------------------------------------------------

    def set_setting(self, name: str, value: str) -> None:
        self._write("INSERT OR REPLACE INTO settings (name, value) VALUES (?, ?)", (name, value))

    def setting(self, name: str) -> str | None:
        row = self._conn.execute("SELECT value FROM settings WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    # -- internals ------------------------------------------------------------------------------

    def _write(self, sql: str, params: tuple[Any, ...]) -> None:
        with self.transaction():
            self._conn.execute(sql, params)

    def _meta(self, name: str) -> bytes:
        return _meta(self._conn, name)

    def _set_meta(self, name: str, value: bytes | str) -> None:
        self._conn.execute("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", (name, value))


def _meta(conn: sqlite3.Connection, name: str) -> bytes:
    row = conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise StoreCorrupt(f"the store lacks its {name!r} record: start a new profile")
    value = row[0]
    return value.encode() if isinstance(value, str) else bytes(value)


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring the schema to the newest version, one recorded step at a time."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    current = int(row[0] or 0)
    if current > len(MIGRATIONS):
        raise StoreCorrupt(
            f"this store was written by a newer sealchat (schema {current}): upgrade sealchat"
        )
    for version in range(current + 1, len(MIGRATIONS) + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            # executescript() would commit on its own: run the statements one by one.
            for statement in MIGRATIONS[version - 1].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


def _unlock(conn: sqlite3.Connection, path: str, passphrase: str, kdf: KdfParams) -> bytes:
    """Unwrap the data key (or make one for a new store); a failed tag means wrong passphrase."""
    has_key = conn.execute("SELECT 1 FROM meta WHERE name = 'data_key'").fetchone()
    if has_key is None:
        salt, data_key = os.urandom(16), os.urandom(32)
        kek = derive_kek(passphrase, salt, kdf)
        params = json.dumps(
            {
                "time_cost": kdf.time_cost,
                "memory_kib": kdf.memory_kib,
                "parallelism": kdf.parallelism,
            }
        )
        conn.execute("BEGIN IMMEDIATE")
        for name, value in (
            ("kdf", params),
            ("salt", salt),
            ("data_key", SecretBox(kek).seal(data_key, _DK_AAD)),
        ):
            conn.execute("INSERT INTO meta (name, value) VALUES (?, ?)", (name, value))
        conn.execute("COMMIT")
        return data_key
    params_stored = KdfParams(**json.loads(_meta(conn, "kdf")))
    kek = derive_kek(passphrase, _meta(conn, "salt"), params_stored)
    try:
        return SecretBox(kek).open(_meta(conn, "data_key"), _DK_AAD)
    except SealError as exc:
        raise WrongPassphrase(path) from exc
