"""Account commands: register, login, logout, whoami, devices, verify."""

from __future__ import annotations

import aiohttp

from tui.client.api import Api
from tui.client.client import ChatClient
from tui.client.e2ee import E2ee
from tui.client.profile import ProfileConfig, login_device, make_client, new_device_id
from tui.client.rest import Rest
from tui.commands.context import CommandError, Context


async def _signup(ctx: Context, user: str, email: str, password: str) -> None:
    async with aiohttp.ClientSession() as http:
        await Api(Rest(ctx.server, http, None)).signup(user, password, email)


async def register(ctx: Context) -> int:
    args = ctx.args
    _check_profile_free(ctx, args.user)
    password = ctx.password(confirm=True)
    await _signup(ctx, args.user, args.email, password)
    ctx.note(f"account {args.user} created on {ctx.server}")
    return await _login(ctx, args.user, password)


async def login(ctx: Context) -> int:
    _check_profile_free(ctx, ctx.args.user)
    return await _login(ctx, ctx.args.user, ctx.password())


def _check_profile_free(ctx: Context, user: str) -> None:
    config = ctx.profile.config()
    if config is not None and config.user not in (None, user):
        raise CommandError(
            f"{ctx.profile.home} is the profile of {config.user}: pick another --home for {user}"
        )


async def _login(ctx: Context, user: str, password: str) -> int:
    config = ctx.profile.config() or ProfileConfig(server=ctx.server)
    store = await ctx.open_store()
    client = make_client(ctx.server, store, config.device_id)
    try:
        device_id = config.device_id or new_device_id()
        e2ee = await login_device(client, store, user, password, device_id)
        ctx.profile.save_config(ProfileConfig(ctx.server, user, e2ee.engine.device_id))
        ctx.out(
            {"user": user, "device": e2ee.engine.device_id, "server": ctx.server},
            f"logged in as {user} (device {e2ee.engine.device_id}) on {ctx.server}",
        )
    finally:
        await client.close()
        store.close()
    return 0


async def logout(ctx: Context) -> int:
    config = ctx.config()
    async with ctx.client() as client:
        await client.logout()
    ctx.out({"user": config.user, "logged_out": True}, f"{config.user} logged out")
    return 0


async def whoami(ctx: Context) -> int:
    config = ctx.config()
    data = {"user": config.user, "device": config.device_id, "server": ctx.server}
    ctx.out(data, f"{config.user} (device {config.device_id}) on {ctx.server}")
    return 0


async def devices(ctx: Context) -> int:
    config = ctx.config()
    async with ctx.client() as client:
        listed = await client.api.devices()
    rows = [
        {
            "device": d["device_id"],
            "name": d["display_name"],
            "ed25519": d["keys"]["ed25519"],
            "created_at": d["created_at"],
            "this": d["device_id"] == config.device_id,
        }
        for d in listed
    ]
    text = "\n".join(
        f"{'*' if r['this'] else ' '} {r['device']}  {r['name']}  key {r['ed25519'][:16]}…  "
        f"since {r['created_at']}"
        for r in rows
    )
    ctx.out(rows, text or "(no devices)")
    return 0


async def verify(ctx: Context) -> int:
    user = ctx.args.user
    async with ctx.client() as client:
        e2ee = _e2ee(client)
        await e2ee.refresh_devices(sorted({user, client.user}))
        engine = e2ee.engine
        if not engine.devices_of(user):
            raise CommandError(f"{user} has no devices yet: they must log in once first")
        if ctx.args.acknowledge:
            engine.acknowledge_identity_change(user)
        number = engine.safety_number(user)
        held = user in engine.held_users()
        devices = [
            {"device": d.device, "ed25519": d.ed25519, "verified": d.verified}
            for d in engine.devices_of(user)
            if not d.removed
        ]
    lines = [f"safety number with {user}:", f"  {number}"]
    lines.append("compare it with theirs (in person or on a call); if it matches, you talk to them")
    if held:
        lines.append(
            f"WARNING: {user}'s security key changed; sending to them is held. "
            f"Check the number, then run `sealchat verify {user} --acknowledge`"
        )
    ctx.out(
        {"user": user, "safety_number": number, "held": held, "devices": devices}, "\n".join(lines)
    )
    return 0


def _e2ee(client: ChatClient) -> E2ee:
    if not isinstance(client.cipher, E2ee):
        raise CommandError("this profile has no device keys: run `sealchat login` first")
    return client.cipher
