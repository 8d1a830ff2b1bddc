"""Hostile frames: the codec never raises or hangs, and the gateway answers with a clear error
(or the documented close code) and stays usable — for the sender and for everyone else."""

from __future__ import annotations

import json
import time

import pytest
from aiohttp import WSMsgType
from hypothesis import HealthCheck, given, settings

from backend.protocol.codec import MAX_FRAME_BYTES, BadFrame, UnknownFrame, decode_request, encode
from backend.protocol.errors import CloseCode
from backend.protocol.frames import Frame
from tests.security.frames import EDGE_BYTES, EDGE_TEXTS, SECRET, hostile_text
from tests.security.helpers import new_user, report

pytestmark = pytest.mark.security

SLOWEST = {"seconds": 0.0}


def check_decoding(data: str | bytes) -> None:
    started = time.perf_counter()
    out = decode_request(data)
    SLOWEST["seconds"] = max(SLOWEST["seconds"], time.perf_counter() - started)
    assert isinstance(out, Frame | BadFrame | UnknownFrame)
    if isinstance(out, BadFrame):
        assert out.reason and len(out.reason) < 300, out.reason
        assert SECRET not in out.reason, "a reason never echoes a value"
        assert out.id is None or (type(out.id) is int and out.id >= 0)
    elif isinstance(out, UnknownFrame):
        assert len(out.type) <= 64
    else:
        again = decode_request(encode(out))  # what we accept we can re-encode losslessly
        assert again == out


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(text=hostile_text)
def test_the_codec_never_raises_on_hostile_text(text: str) -> None:
    check_decoding(text)
    check_decoding(text.encode("utf-8", "surrogatepass"))


def test_the_codec_handles_the_fixed_edges() -> None:
    for text in EDGE_TEXTS:
        check_decoding(text)
    for data in EDGE_BYTES:
        check_decoding(data)
    assert isinstance(decode_request("x" * (MAX_FRAME_BYTES + 1)), BadFrame)
    assert isinstance(decode_request("\U0001f600" * (MAX_FRAME_BYTES // 4 + 1)), BadFrame)
    report(
        "codec edges",
        cases=len(EDGE_TEXTS) + len(EDGE_BYTES),
        slowest_s=f"{SLOWEST['seconds']:.3f}",
    )


@pytest.mark.parametrize("make_settings", ["embedded"], indirect=True)
async def test_the_gateway_answers_hostile_frames_and_stays_up(stack):
    client = await stack(rate_per_second=10_000, burst=10_000)
    alice, bob = await new_user(client), await new_user(client)
    ws = await alice.socket()
    bystander = await bob.socket()
    samples: list[str] = []

    @settings(
        max_examples=120, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    @given(text=hostile_text)
    def collect(text: str) -> None:
        samples.append(text)

    collect()
    answered = closed_too_big = 0
    for text in [*EDGE_TEXTS, *samples]:
        if len(text.encode("utf-8", "surrogatepass")) > MAX_FRAME_BYTES:
            continue  # oversized frames close the socket: tried once below
        try:
            await ws.ws.send_str(text)
        except UnicodeEncodeError:  # a lone surrogate: no valid text frame, so raw bytes
            await ws.ws.send_bytes(text.encode("utf-8", "surrogatepass"))
        msg = await ws.ws.receive(timeout=10)
        assert msg.type is WSMsgType.TEXT, (msg.type, text[:80])
        reply = json.loads(msg.data)
        if reply.get("type") != "result":
            ws.backlog.append(reply)  # an event; the answer follows
            msg = await ws.ws.receive(timeout=10)
            reply = json.loads(msg.data)
        assert SECRET not in msg.data
        if reply["success"]:  # a well-formed request hypothesis happened to build
            assert reply["id"] >= 1
        else:
            assert reply["error"]["code"] and reply["error"]["message"]
        answered += 1
    ws.next_id = 2**53 - 1  # past any id a sample used: an answer shows the socket still works
    assert (await ws.ask("ping"))["type"] == "result", "the connection is still usable"
    await ws.ws.send_str('{"id": 1, "type": "ping", "pad": "' + "x" * MAX_FRAME_BYTES + '"}')
    assert await ws.closed() == CloseCode.TOO_BIG
    closed_too_big += 1
    # Before authenticating, anything hostile closes with 4001 and the server carries on.
    first_frame_closes = 0
    for text in EDGE_TEXTS[:8] + samples[:10]:
        if len(text.encode("utf-8", "surrogatepass")) > MAX_FRAME_BYTES:
            continue
        raw = await client.ws_connect("/chat/ws")
        await raw.send_bytes(text.encode("utf-8", "surrogatepass"))
        while (msg := await raw.receive(timeout=10)).type is WSMsgType.TEXT:
            assert not json.loads(msg.data)["success"]
        assert raw.close_code == CloseCode.AUTH_FAILED
        first_frame_closes += 1
    assert (await bystander.ask("ping"))["success"], "other users never noticed"
    report(
        "gateway hostile frames",
        answered_with_error_or_result=answered,
        closed_1009=closed_too_big,
        first_frame_closed_4001=first_frame_closes,
        crashes=0,
    )
