"""``sealchat send``, ``send-file`` and ``tail``."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path
from typing import Any

from tui.client.client import ChatClient
from tui.client.events import (
    ClientEvent,
    IdentityWarning,
    MessageExpired,
    MessageShown,
    MessageUndecryptable,
)
from tui.client.files import download_file, is_file, safe_name, upload_file
from tui.commands.context import CommandError, Context
from tui.commands.resolve import room_id
from tui.crypto import AttachmentCorrupt


async def send(ctx: Context) -> int:
    text = ctx.args.text
    if text is None or text == "-":
        text = await asyncio.to_thread(sys.stdin.read)
        text = text.rstrip("\n")
    if not text:
        raise CommandError("nothing to send: give TEXT or pipe it on stdin")
    async with ctx.client(live=True) as client:
        rid = await room_id(client, ctx.args.room)
        msg_id = await client.send(rid, {"body": text}, ttl=ctx.args.ttl)
    ctx.out({"room": rid, "msg_id": msg_id}, f"sent to {rid}")
    return 0


async def send_file(ctx: Context) -> int:
    path = Path(ctx.args.path)
    if not await asyncio.to_thread(path.is_file):
        raise CommandError(f"{path} is not a readable file")
    async with ctx.client(live=True) as client:
        rid = await room_id(client, ctx.args.room)
        ctx.note(f"encrypting and uploading {path.name}…")
        content = await upload_file(client.api, rid, path)
        msg_id = await client.send(rid, content, ttl=ctx.args.ttl)
    ctx.out(
        {"room": rid, "msg_id": msg_id, "blob": content["blob"], "size": content["size"]},
        f"sent {path.name} ({content['size']} bytes) to {rid}",
    )
    return 0


#: How long ``tail`` waits for room keys still on their way (to-device messages are handed
#: over right after connecting) before it prints a message as undecryptable.
KEY_WAIT_SECONDS = 10.0


async def tail(ctx: Context) -> int:
    args = ctx.args
    async with ctx.client(live=True) as client:
        rid = await room_id(client, args.room)
        cipher = client.cipher
        assert cipher is not None
        latest: dict[int, ClientEvent] = {}
        changed = asyncio.Event()

        def track(ev: ClientEvent) -> None:
            if isinstance(ev, MessageShown | MessageExpired) and ev.room == rid:
                latest[ev.seq] = ev
                changed.set()

        stop_tracking = client.events.on(track)
        page = await client.history(rid, limit=args.count)
        for msg in page:
            for ev in await cipher.open(msg):
                if not isinstance(latest.get(msg.seq), MessageShown):
                    latest[msg.seq] = ev
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(KEY_WAIT_SECONDS):
                while any(_waiting(latest.get(m.seq)) for m in page):
                    changed.clear()
                    await changed.wait()
        stop_tracking()
        shown: set[int] = set()
        for msg in page:
            await _print(ctx, client, latest[msg.seq], shown)
        if not args.follow:
            return 0
        ctx.note("following; Ctrl+C to stop")
        async with client.events.subscribe() as events:
            async for ev in events:
                if getattr(ev, "room", rid) == rid or isinstance(ev, IdentityWarning):
                    await _print(ctx, client, ev, shown)
    return 0


def _waiting(ev: ClientEvent | None) -> bool:
    return isinstance(ev, MessageUndecryptable) and ev.retryable


async def _print(ctx: Context, client: ChatClient, ev: ClientEvent, shown: set[int]) -> None:
    if isinstance(ev, MessageShown):
        if ev.seq in shown:
            return
        shown.add(ev.seq)
        data: dict[str, Any] = {
            "room": ev.room,
            "seq": ev.seq,
            "sender": ev.sender,
            "device": ev.device,
            "ts": ev.ts.isoformat(),
            "text": ev.text,
            "verified": ev.verified,
        }
        line = f"[{ev.ts:%Y-%m-%d %H:%M:%S}] {ev.sender}: {ev.text}"
        if is_file(ev.content):
            data["file"] = {k: ev.content.get(k) for k in ("name", "size", "mime", "blob")}
            line += f"  [{safe_name(ev.content)}, {ev.content.get('size')} bytes]"
            if ctx.args.save is not None:
                saved = await _save(client, ev.content, Path(ctx.args.save))
                data["file"]["saved"] = saved
                line += f" saved to {saved}" if saved.startswith("/") else f" {saved}"
        ctx.out(data, line)
    elif isinstance(ev, MessageUndecryptable):
        if ev.seq in shown:
            return
        data = {"room": ev.room, "seq": ev.seq, "sender": ev.sender, "undecryptable": ev.reason}
        ctx.out(data, f"[{ev.ts:%Y-%m-%d %H:%M:%S}] {ev.sender}: ({ev.reason})")
    elif isinstance(ev, IdentityWarning):
        ctx.out({"warning": ev.detail, "user": ev.user}, f"!! {ev.detail}")


def _free_path(folder: Path, name: str) -> Path:
    """``folder/name``, or ``folder/N-name`` when taken: a download never overwrites."""
    folder.mkdir(parents=True, exist_ok=True)
    dst, n = folder / name, 1
    while dst.exists():
        dst, n = folder / f"{n}-{name}", n + 1
    return dst


async def _save(client: ChatClient, content: dict[str, Any], folder: Path) -> str:
    dst = await asyncio.to_thread(_free_path, folder, safe_name(content))
    try:
        await download_file(client.api, content, dst)
    except AttachmentCorrupt as exc:
        return f"(not saved: {exc})"
    return str(dst.resolve())
