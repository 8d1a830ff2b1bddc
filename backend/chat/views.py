"""HTTP edge of the chat service: parse, call the service, reply."""

from __future__ import annotations

import re

from aiohttp import web
from pydantic import Field

from backend.auth.schemas import Health
from backend.chat import schemas
from backend.chat.blobs import BlobOut, Blobs
from backend.chat.log_signatures import LogSignatures
from backend.chat.room_reads import not_found
from backend.chat.social_views import add_social_routes
from backend.common.api import RouteTable, parse_model, read_json, reply
from backend.common.errors import ApiError
from backend.common.typedefs import CHAT_RUNTIME, GUARD
from backend.protocol.errors import ErrorCode as E

_ROOM_ID = re.compile(schemas.ROOM_ID_PATTERN)


class BlobQuery(schemas.Strict):
    room: str = Field(pattern=schemas.ROOM_ID_PATTERN, description="r_ and 22 characters")


async def health(request: web.Request) -> web.Response:
    return reply(Health(message="alive"))


def routes() -> RouteTable:
    t = RouteTable("chat")
    t.add("GET", "/health", health, "Liveness", response=Health, auth=False)
    add_social_routes(t)
    t.add(
        "POST",
        "/rooms/{room_id}/membership/signatures",
        sign_log,
        "Sign membership-log entries you made (Ed25519 of membership_payload)",
        body=schemas.SignaturesIn,
        response=schemas.SignaturesOut,
        errors=(E.NOT_FOUND, E.FORBIDDEN, E.CONFLICT, E.BAD_SIGNATURE),
    )
    t.add(
        "POST",
        "/blobs",
        upload_blob,
        "Upload an encrypted attachment to a room (?room=ID; octet-stream body)",
        response=BlobOut,
        status=201,
        errors=(E.NOT_FOUND, E.TOO_LARGE, E.INVALID),
        query=BlobQuery,
        octets=True,
    )
    t.add(
        "GET",
        "/blobs/{blob_id}",
        download_blob,
        "Download an attachment (members of its room only)",
        errors=(E.NOT_FOUND,),
        octets=True,
    )
    return t


async def sign_log(request: web.Request) -> web.Response:
    me = (await request.config_dict[GUARD].require(request)).sub
    room_id = request.match_info["room_id"]
    if not _ROOM_ID.match(room_id):
        raise not_found(room_id)
    body = await read_json(request, schemas.SignaturesIn)
    runtime = request.config_dict[CHAT_RUNTIME]
    signatures = LogSignatures(runtime.stores.engine, runtime.social.notices)
    return reply(await signatures.sign(me, room_id, body))


_BLOB_ID = re.compile(r"^b_[A-Za-z0-9_-]{22}$")


def _blobs(request: web.Request) -> Blobs:
    runtime = request.config_dict[CHAT_RUNTIME]
    store = runtime.stores.blobs
    assert store is not None  # the chat service opens the blob store with the documents
    return Blobs(store, runtime.social, runtime.settings.chat.max_blob_bytes)


async def upload_blob(request: web.Request) -> web.Response:
    me = (await request.config_dict[GUARD].require(request)).sub
    query = parse_model(BlobQuery, dict(request.query))
    blobs = _blobs(request)
    if request.content_length is not None and request.content_length > blobs.max_bytes:
        raise ApiError(E.TOO_LARGE, f"the file is larger than {blobs.max_bytes} bytes")
    out = await blobs.upload(me, query.room, request.content.iter_chunked(64 * 1024))
    return reply(out, status=201)


async def download_blob(request: web.Request) -> web.StreamResponse:
    me = (await request.config_dict[GUARD].require(request)).sub
    blob_id = request.match_info["blob_id"]
    blobs = _blobs(request)
    if not _BLOB_ID.match(blob_id):
        raise ApiError(E.NOT_FOUND, f"no file {blob_id!r} in your rooms")
    info = await blobs.readable(me, blob_id)
    response = web.StreamResponse(
        headers={
            "Content-Type": "application/octet-stream",
            "Content-Length": str(info.size),
            "X-Content-SHA256": info.sha256,
            "Cache-Control": "private, no-store",
        }
    )
    await response.prepare(request)
    async for chunk in blobs.chunks(blob_id):
        await response.write(chunk)
    await response.write_eof()
    return response
