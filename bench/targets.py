"""The four servers under test, each speaking its own protocol to the same load generator.

A target starts its processes, prepares its clients (sealchat: real accounts, devices and
rooms through the REST API), opens one client socket (through the handshake its protocol
needs: sealchat's ``auth`` frame, socket.io's connect and ``join``, the baseline's room
line), and encodes one ``send``. Every message carries ``~N.T~`` in its body: ``N`` the
message's number in the run, ``T`` its scheduled send time (µs) — what the receiver needs
to check delivery and measure latency without decoding JSON.
"""

from __future__ import annotations

import abc
import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from bench import wsclient
from bench.accounts import Api, User, make_users
from bench.procs import BIN, Child, free_port

PEER_BODY = 160
"""Characters of the peers' message body: ~200-byte frames, as the issue's reference."""
SEALCHAT_CIPHERTEXT = 200
"""A short text message after Megolm encryption and base64: about 200 characters."""
CHAT_LIMITS: dict[str, Any] = {
    # The defaults are for a person typing; a load generator sends thousands per second on
    # one socket, and must not be throttled (4009) or cut off as too slow (4008).
    "rate_per_second": 100_000.0,
    "burst": 1_000_000,
    "send_queue_size": 100_000,
    "auth_deadline_seconds": 60.0,
}


def body(n: int, t: int, size: int) -> str:
    head = f"~{n}.{t}~"
    return head + "A" * max(size - len(head), 0)


class Client:
    """One socket of the load generator and what it received in the current run."""

    __slots__ = (
        "acked",
        "conn",
        "dupes",
        "errors",
        "failed",
        "got",
        "idx",
        "next_id",
        "ready",
        "resyncs",
        "room",
        "seqs",
        "user",
    )

    def __init__(self, idx: int, room: str, user: User | None = None) -> None:
        self.idx, self.room, self.user = idx, room, user
        self.conn: wsclient.WsConn | None = None
        self.got: set[int] = set()
        self.seqs: list[int] = []
        self.dupes = 0
        self.next_id = 2
        self.acked = self.failed = 0
        self.errors: list[bytes] = []
        self.resyncs = 0
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def reset(self) -> None:
        self.got, self.seqs, self.dupes, self.resyncs = set(), [], 0, 0
        self.acked = self.failed = 0
        self.errors = []

    def settle(self, error: str | None = None) -> None:
        if not self.ready.done():
            if error is None:
                self.ready.set_result(None)
            else:
                self.ready.set_exception(ConnectionError(error))


class Target(abc.ABC):
    name = ""
    kind = ""  # "baseline", "peer" or "sealchat"
    brokers = False
    """Whether the shared brokers work for this target (their CPU is then its CPU)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.children: list[Child] = []

    @abc.abstractmethod
    async def start(self, progress: Callable[[str], None]) -> None:
        """Start the processes and wait until they answer."""

    async def prepare(self, count: int, sizes: tuple[int, ...], progress: Any) -> None:
        """Make what ``count`` clients in rooms of ``sizes`` need (nothing for the peers)."""
        return None

    def room_of(self, idx: int, size: int) -> str:
        return f"r{size}-{idx // size}"

    @abc.abstractmethod
    def endpoint(self, idx: int) -> tuple[int, str]:
        """(port, path) of client ``idx``'s WebSocket."""

    def hello(self, client: Client) -> bytes | None:
        """The first frame after the upgrade (None: wait for the server to speak)."""
        return None

    def control(self, client: Client, payload: bytes) -> None:
        """A frame that carries no benchmark message: handshake steps, results, pings."""
        return None

    @abc.abstractmethod
    def frame(self, client: Client, n: int, t: int) -> bytes:
        """The frame that sends message ``n`` (scheduled at ``t`` µs) to the client's room."""

    def pids(self) -> list[int]:
        return list(self.processes().values())

    def processes(self) -> dict[str, int]:
        """The running server processes by name (stores excluded)."""
        return {c.name: c.pid for c in self.children if c.running and not c.store}

    def stores(self) -> dict[str, int]:
        """The running store processes of the target's own (reported like the brokers)."""
        return {c.name: c.pid for c in self.children if c.running and c.store}

    def idle_pid(self) -> int:
        """The process that holds the sockets of the idle scenario."""
        return self.children[0].pid

    async def open(
        self, client: Client, on_frame: wsclient.FrameHandler, *, idle: bool = False
    ) -> None:
        port, path = self.endpoint(0 if idle else client.idx)
        client.ready = asyncio.get_running_loop().create_future()
        conn = await wsclient.connect("127.0.0.1", port, path, on_frame, tag=client)
        client.conn = conn
        first = self.hello(client)
        if first is not None:
            conn.send(first)
        await asyncio.wait_for(client.ready, 180)

    async def stop(self) -> None:
        await asyncio.gather(*(child.stop() for child in self.children))

    def _peer(self, module: str) -> Child:
        port = free_port()
        child = Child(
            name=self.name,
            argv=[sys.executable, "-m", module, "--port", str(port)],
            log_path=self.workdir / f"{self.name}.log",
            health_url=f"http://127.0.0.1:{port}/health",
            port=port,
        )
        self.children.append(child)
        return child


class Baseline(Target):
    name, kind = "baseline", "baseline"

    async def start(self, progress: Callable[[str], None]) -> None:
        await self._peer("bench.peers.baseline").start()

    def endpoint(self, idx: int) -> tuple[int, str]:
        port = self.children[0].port
        assert port is not None
        return port, "/ws"

    def hello(self, client: Client) -> bytes:
        return client.room.encode()

    def control(self, client: Client, payload: bytes) -> None:
        if payload == b"joined":
            client.settle()

    def frame(self, client: Client, n: int, t: int) -> bytes:
        return json.dumps({"room": client.room, "p": body(n, t, PEER_BODY)}).encode()


class SocketIO(Target):
    name, kind = "socketio", "peer"

    async def start(self, progress: Callable[[str], None]) -> None:
        await self._peer("bench.peers.socketio_server").start()

    def endpoint(self, idx: int) -> tuple[int, str]:
        port = self.children[0].port
        assert port is not None
        return port, "/socket.io/?EIO=4&transport=websocket"

    def control(self, client: Client, payload: bytes) -> None:
        conn = client.conn
        assert conn is not None
        if payload == b"2":  # Engine.IO ping: answer or be dropped
            conn.send(b"3")
        elif payload.startswith(b"0{"):  # Engine.IO open: connect to the default namespace
            conn.send(b"40")
        elif payload.startswith(b"40"):  # connected: join the room, acknowledged
            conn.send(b'421["join",' + json.dumps(client.room).encode() + b"]")
        elif payload.startswith(b"431"):
            client.settle()
        elif payload.startswith(b"44"):
            client.settle(f"socket.io connect refused: {payload[:200]!r}")

    def frame(self, client: Client, n: int, t: int) -> bytes:
        data = json.dumps({"room": client.room, "p": body(n, t, PEER_BODY)})
        return b'42["send",' + data.encode() + b"]"


class Sealchat(Target):
    """What sealchat targets share: accounts, the ``auth`` frame, ``send`` frames."""

    kind = "sealchat"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.users: list[User] = []
        self.config_path = workdir / f"{self.name}.toml"

    setup_concurrency = 16
    """REST calls at once while setting up."""
    run_tag = 0
    """Set per run: msg_ids must never repeat (the archiver would absorb a repeat)."""

    @property
    @abc.abstractmethod
    def rest(self) -> tuple[str, str]:
        """Base URLs of the auth and the chat REST APIs."""

    @abc.abstractmethod
    def chat_ports(self) -> list[int]:
        """Ports of the chat nodes (clients are spread over them)."""

    async def prepare(self, count: int, sizes: tuple[int, ...], progress: Any) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
            api = Api(http, *self.rest)
            self.users = await make_users(
                api, count, sizes, lambda m: progress(f"{self.name}: {m}"), self.setup_concurrency
            )

    def room_of(self, idx: int, size: int) -> str:
        return self.users[idx].rooms[size]

    def endpoint(self, idx: int) -> tuple[int, str]:
        ports = self.chat_ports()
        return ports[idx % len(ports)], "/chat/ws"

    def hello(self, client: Client) -> bytes:
        user = client.user or self.users[client.idx % len(self.users)]
        frame: dict[str, Any] = {"id": 1, "type": "auth", "token": user.token}
        if client.user is not None:
            frame["device"] = user.device
        client.next_id = 2
        return json.dumps(frame).encode()

    def control(self, client: Client, payload: bytes) -> None:
        if b'"type":"result"' not in payload:
            if b'"type":"resync"' in payload:
                client.resyncs += 1  # live delivery was cut short: explains any missing
            return  # presence, member events, …: not what is measured
        if not client.ready.done():
            ok = b'"success":true' in payload
            client.settle(None if ok else f"auth refused: {payload[:300]!r}")
            return
        if b'"success":true' in payload:
            client.acked += 1
        else:
            client.failed += 1
            if len(client.errors) < 3:
                client.errors.append(payload[:300])

    def frame(self, client: Client, n: int, t: int) -> bytes:
        rid, client.next_id = client.next_id, client.next_id + 1
        return (
            f'{{"id":{rid},"type":"send","msg_id":"{self.run_tag:016x}{n:016x}","room":"{client.room}",'
            f'"ciphertext":"{body(n, t, SEALCHAT_CIPHERTEXT)}"}}'
        ).encode()

    def sealchatd(self, command: str, name: str, *, port: int | None = None) -> Child:
        argv = [str(BIN / "sealchatd"), command, "--config", str(self.config_path)]
        if port is not None:
            argv += ["--port", str(port)]
        health = f"http://127.0.0.1:{port}/{command if command != 'all' else 'auth'}/health"
        child = Child(name, argv, self.workdir / f"{name}.log", health_url=health, port=port)
        self.children.append(child)
        return child
