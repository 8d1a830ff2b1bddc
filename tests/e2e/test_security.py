"""What a hostile server (or network) can try, and how every client catches it.

The server is honest in these tests except where a test makes it lie: it pushes frames of
its own (``registry.push``) and writes membership entries no client made (the room service
called directly, as a compromised server could).
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

from backend.common.typedefs import CHAT_RUNTIME
from backend.protocol.frames import Message
from tests.chat.ws_helpers import registry
from tests.e2e.harness import Party, befriend, group, party
from tui.client.events import IdentityWarning, MemberChanged, RoomVerified
from tui.client.files import download_file, upload_file
from tui.crypto import AttachmentCorrupt, Engine, SendingHeld
from tui.crypto import Undecryptable as CryptoUndecryptable


async def _close(*parties: Party) -> None:
    for p in parties:
        await p.close()


async def test_a_late_joiner_cannot_read_what_came_before(server, tmp_path):
    a, b, c = [await party(server, tmp_path) for _ in range(3)]
    try:
        room = await group(a, b)
        await befriend(a, c)
        await a.client.send(room, {"body": "before carol"})
        await b.seen.until(lambda: b.texts(room) == ["before carol"])
        await a.client.rooms.invite(room, c.id)
        await c.client.rooms.join(room, c.id)
        await a.client.send(room, {"body": "after carol"})
        await c.seen.until(lambda: "after carol" in c.texts(room))
        await c.client.settle()
        assert c.texts(room) == ["after carol"]
        earlier = await c.client.history(room, after=0)
        assert [m.seq for m in earlier] == [1, 2]
        result = c.e2ee.engine.decrypt_room(earlier[0].model_dump(mode="json"))
        assert isinstance(result, CryptoUndecryptable)
    finally:
        await _close(a, b, c)


async def test_a_removed_member_cannot_read_what_comes_after(server, tmp_path):
    a, b, c = [await party(server, tmp_path) for _ in range(3)]
    try:
        room = await group(a, b, c)
        await a.client.send(room, {"body": "all three"})
        await c.seen.until(lambda: c.texts(room) == ["all three"])
        await a.client.rooms.kick(room, c.id)
        await a.client.send(room, {"body": "without carol"})
        await b.seen.until(lambda: b.texts(room) == ["all three", "without carol"])
        # Even holding the ciphertext (a leak, a copy from the wire), carol cannot read it:
        # the sender made a new session after the kick and never shared it with her.
        [after] = await b.client.history(room, after=1)
        result = c.e2ee.engine.decrypt_room(after.model_dump(mode="json"))
        assert isinstance(result, CryptoUndecryptable) and result.reason == "no_session"
        assert "without carol" not in c.texts(room)
    finally:
        await _close(a, b, c)


async def _forge(server, to: Party, room: str, template: Message, **changes) -> None:
    """The server pushes ``to`` a message frame of its own making, as the next seq."""
    frame = template.model_copy(
        update={
            "seq": to.client.store.last_seq(room) + 1,
            "msg_id": base64.urlsafe_b64encode(bytes(16)).decode().rstrip("=")[:22],
            "ts": datetime.now(UTC),
            **changes,
        }
    )
    registry(server).push([to.id], frame)


def _flip_a_bit(ciphertext: str) -> str:
    """One bit of the Megolm ciphertext inside the envelope flipped (the envelope stays valid)."""
    envelope = json.loads(ciphertext)
    body = envelope["body"]
    raw = bytearray(base64.b64decode(body + "=" * (-len(body) % 4)))
    raw[len(raw) // 2] ^= 0x01
    envelope["body"] = base64.b64encode(bytes(raw)).decode().rstrip("=")
    return json.dumps(envelope)


async def test_tampered_replayed_and_forged_messages_are_rejected_and_shown(server, tmp_path):
    a, b, c = [await party(server, tmp_path) for _ in range(3)]
    try:
        room = await group(a, b, c)
        await a.client.send(room, {"body": "original"})
        await b.seen.until(lambda: b.texts(room) == ["original"])
        [original] = await b.client.history(room, after=0)

        tampered = _flip_a_bit(original.ciphertext)
        await _forge(server, b, room, original, ciphertext=tampered)
        await b.seen.until(lambda: len(b.undecryptable(room)) == 1)
        await _forge(server, b, room, original)  # the same ciphertext again: a replay
        await b.seen.until(lambda: len(b.undecryptable(room)) == 2)
        # Alice's words under carol's name (carol's device really exists).
        await _forge(server, b, room, original, sender=c.id, device=c.client.device_id)
        await b.seen.until(lambda: len(b.undecryptable(room)) == 3)

        codes = [u.code for u in b.undecryptable(room)]
        assert codes == ["tampered", "replay", "sender_mismatch"]
        assert all(not u.retryable for u in b.undecryptable(room))
        assert b.texts(room) == ["original"], "nothing forged was shown as a message"
        assert len(b.alerts()) == 3 and all(x.room == room for x in b.alerts())
    finally:
        await _close(a, b, c)


async def test_a_member_the_server_adds_gets_no_keys(server, tmp_path):
    a, b, m = [await party(server, tmp_path) for _ in range(3)]
    try:
        room = await group(a, b)
        await befriend(a, m)
        # The server writes "alice invited mallory" itself; alice's client never made it.
        await server.app[CHAT_RUNTIME].social.rooms.invite(a.id, room, m.id)
        await m.client.rooms.join(room, m.id)  # mallory signs her own join; it is not enough
        await a.seen.until(
            lambda: any(
                isinstance(e, MemberChanged) and e.user == m.id and e.action == "join"
                for e in a.seen.seen
            )
        )
        [joined] = [
            e
            for e in a.seen.seen
            if isinstance(e, MemberChanged) and e.user == m.id and e.action == "join"
        ]
        assert joined.verified is False and m.id in (joined.problem or "")
        await a.client.send(room, {"body": "not for mallory"})
        await b.seen.until(lambda: b.texts(room) == ["not for mallory"])
        [msg] = await m.client.history(room, after=0)  # the server hands her the ciphertext
        assert isinstance(
            m.e2ee.engine.decrypt_room(msg.model_dump(mode="json")), CryptoUndecryptable
        )
        verified = [e for e in a.seen.seen if isinstance(e, RoomVerified) and e.room == room]
        assert m.id not in verified[-1].members and verified[-1].pending
        assert a.e2ee.engine.membership(room) is not None
        assert m.id not in a.e2ee.engine.membership(room).members  # type: ignore[union-attr]
    finally:
        await _close(a, b, m)


async def test_a_changed_key_is_warned_and_holds_sending_until_acknowledged(server, tmp_path):
    a, b = await party(server, tmp_path), await party(server, tmp_path)
    try:
        await befriend(a, b)
        room = (await a.client.rooms.direct(b.id))["id"]
        await a.client.send(room, {"body": "first"})
        await b.seen.until(lambda: b.texts(room) == ["first"])
        # Bob's device id comes back with other keys (a reinstall, or an impostor).
        device = b.client.device_id
        assert device is not None
        await b.client.api.delete_device(device)
        twin = Engine.create(
            b.store.__class__.open(tmp_path / "twin.sqlite3", "pp", kdf=_fast()), b.id, device
        )
        await b.client.api.register_device(twin.device_registration())
        a.e2ee.forget_room(room)  # as after a member event or the 30 s device-list refresh
        try:
            await a.client.send(room, {"body": "held"})
            raise AssertionError("sending went ahead despite the changed key")
        except SendingHeld as exc:
            assert exc.users == [b.id]
        warnings = [e for e in a.seen.seen if isinstance(e, IdentityWarning)]
        assert warnings and warnings[0].user == b.id and room in warnings[0].rooms
        a.e2ee.engine.acknowledge_identity_change(b.id)
        await a.client.send(room, {"body": "after acknowledging"})
    finally:
        await _close(a, b)


def _fast():
    from tests.client.harness import FAST_KDF

    return FAST_KDF


async def test_attachments_round_trip_and_a_corrupted_blob_is_refused(server, tmp_path):
    a, b = await party(server, tmp_path), await party(server, tmp_path)
    try:
        await befriend(a, b)
        room = (await a.client.rooms.direct(b.id))["id"]
        src = tmp_path / "photo.bin"
        src.write_bytes(bytes(range(256)) * 1000)
        content = await upload_file(a.client.api, room, src)
        await a.client.send(room, content)
        await b.seen.until(lambda: len(b.seen.shown(room)) == 1)
        received = b.latest(room).content
        assert received["name"] == "photo.bin" and received["size"] == src.stat().st_size
        out = tmp_path / "got.bin"
        await download_file(b.client.api, received, out)
        assert out.read_bytes() == src.read_bytes()

        # The server serves other bytes under the blob id: a truncated copy, then garbage.
        sealed = await a.client.api.download_blob(received["blob"])
        for fake in (sealed[: len(sealed) // 2], bytes(len(sealed))):
            other = await a.client.api.upload_blob(room, fake)
            bad = tmp_path / "bad.bin"
            try:
                await download_file(b.client.api, {**received, "blob": other["blob"]}, bad)
                raise AssertionError("a corrupted blob was accepted")
            except AttachmentCorrupt:
                pass
            assert not bad.exists(), "nothing is written from a corrupted blob"
    finally:
        await _close(a, b)
