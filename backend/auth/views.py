"""HTTP edge of the auth service: parse, call the service, reply. Nothing decides here."""

from __future__ import annotations

from aiohttp import web

from backend.auth import schemas
from backend.auth.service import AuthService
from backend.common.api import RouteTable, read_json, reply
from backend.common.net import client_address
from backend.common.typedefs import AUTH_SERVICE, GUARD, SETTINGS
from backend.protocol.errors import ErrorCode as E


def _service(request: web.Request) -> AuthService:
    return request.config_dict[AUTH_SERVICE]


async def health(request: web.Request) -> web.Response:
    return reply(schemas.Health(message="alive"))


async def signup(request: web.Request) -> web.Response:
    body = await read_json(request, schemas.SignupIn)
    await _service(request).signup(body)
    return reply(schemas.Message(message="signup successful"))


async def login(request: web.Request) -> web.Response:
    body = await read_json(request, schemas.LoginIn)
    address = client_address(request, request.config_dict[SETTINGS].server.trusted_proxies)
    return reply(await _service(request).login(body, address))


async def refresh(request: web.Request) -> web.Response:
    body = await read_json(request, schemas.RefreshIn)
    return reply(await _service(request).refresh(body))


async def logout(request: web.Request) -> web.Response:
    claims = await request.config_dict[GUARD].require(request)
    await _service(request).logout(claims)
    return reply(schemas.Message(message="logged out"))


async def get_user(request: web.Request) -> web.Response:
    await request.config_dict[GUARD].require(request)
    return reply(await _service(request).get_user(request.match_info["id"]))


async def delete_account(request: web.Request) -> web.Response:
    claims = await request.config_dict[GUARD].require(request)
    body = await read_json(request, schemas.DeleteAccountIn)
    address = client_address(request, request.config_dict[SETTINGS].server.trusted_proxies)
    await _service(request).delete_account(claims, body, address)
    return reply(schemas.Message(message="account deleted"))


async def register_device(request: web.Request) -> web.Response:
    claims = await request.config_dict[GUARD].require(request)
    body = await read_json(request, schemas.DeviceIn)
    return reply(await _service(request).register_device(claims, body), status=201)


async def list_devices(request: web.Request) -> web.Response:
    claims = await request.config_dict[GUARD].require(request)
    return reply(await _service(request).list_devices(claims))


async def delete_device(request: web.Request) -> web.Response:
    claims = await request.config_dict[GUARD].require(request)
    await _service(request).delete_device(claims, request.match_info["device_id"])
    return reply(schemas.Message(message="device deleted"))


async def upload_keys(request: web.Request) -> web.Response:
    claims = await request.config_dict[GUARD].require(request)
    body = await read_json(request, schemas.KeysUploadIn)
    return reply(await _service(request).upload_keys(claims, body))


async def key_count(request: web.Request) -> web.Response:
    claims = await request.config_dict[GUARD].require(request)
    return reply(await _service(request).key_count(claims, request.match_info["device_id"]))


async def query_keys(request: web.Request) -> web.Response:
    await request.config_dict[GUARD].require(request)
    body = await read_json(request, schemas.KeysQueryIn)
    return reply(await _service(request).query_keys(body))


async def claim_keys(request: web.Request) -> web.Response:
    claims = await request.config_dict[GUARD].require(request)
    body = await read_json(request, schemas.KeysClaimIn)
    return reply(await _service(request).claim_keys(claims, body))


async def jwks(request: web.Request) -> web.Response:
    return web.json_response(
        _service(request).issuer.jwks(), headers={"Cache-Control": "public, max-age=60"}
    )


def routes() -> RouteTable:
    t = RouteTable("auth")
    t.add("GET", "/health", health, "Liveness", response=schemas.Health, auth=False)
    t.add(
        "POST",
        "/signup",
        signup,
        "Create an account",
        body=schemas.SignupIn,
        response=schemas.Message,
        auth=False,
        errors=(E.CONFLICT, E.FORBIDDEN),
    )
    t.add(
        "POST",
        "/login",
        login,
        "Log in: access token and refresh token",
        body=schemas.LoginIn,
        response=schemas.Tokens,
        auth=False,
        errors=(E.BAD_CREDENTIALS, E.THROTTLED),
    )
    t.add(
        "POST",
        "/refresh",
        refresh,
        "Rotate the refresh token, get a new access token",
        body=schemas.RefreshIn,
        response=schemas.Tokens,
        auth=False,
        errors=(E.REFRESH_REUSED,),
    )
    t.add("POST", "/logout", logout, "End this session everywhere", response=schemas.Message)
    t.add(
        "GET",
        "/getuser/{id}",
        get_user,
        "Whether a user exists (id only)",
        response=schemas.UserOut,
        errors=(E.NOT_FOUND,),
    )
    t.add(
        "DELETE",
        "/account",
        delete_account,
        "Delete the caller's account and its data",
        body=schemas.DeleteAccountIn,
        response=schemas.Message,
        errors=(E.BAD_CREDENTIALS, E.THROTTLED),
    )
    t.add(
        "POST",
        "/devices",
        register_device,
        "Register a device and its signed identity keys",
        body=schemas.DeviceIn,
        response=schemas.DeviceOut,
        status=201,
        errors=(E.CONFLICT, E.BAD_SIGNATURE),
    )
    t.add("GET", "/devices", list_devices, "The caller's devices", response=schemas.DeviceList)
    t.add(
        "DELETE",
        "/devices/{device_id}",
        delete_device,
        "Remove one of the caller's devices",
        response=schemas.Message,
        errors=(E.NOT_FOUND,),
    )
    t.add(
        "POST",
        "/keys/upload",
        upload_keys,
        "Upload signed one-time keys and a fallback key",
        body=schemas.KeysUploadIn,
        response=schemas.KeyCount,
        errors=(E.NOT_FOUND, E.CONFLICT, E.BAD_SIGNATURE),
    )
    t.add(
        "GET",
        "/keys/count/{device_id}",
        key_count,
        "One-time keys left for a device",
        response=schemas.KeyCount,
        errors=(E.NOT_FOUND,),
    )
    t.add(
        "POST",
        "/keys/query",
        query_keys,
        "Devices and identity keys of users",
        body=schemas.KeysQueryIn,
        response=schemas.KeysQueryOut,
    )
    t.add(
        "POST",
        "/keys/claim",
        claim_keys,
        "Claim one one-time key per device",
        body=schemas.KeysClaimIn,
        response=schemas.KeysClaimOut,
    )
    t.add(
        "GET",
        "/.well-known/jwks.json",
        jwks,
        "Public keys that verify access tokens",
        response=schemas.Jwks,
        auth=False,
    )
    return t
