"""``sealchat friends …`` and ``sealchat rooms …``."""

from __future__ import annotations

from typing import Any

from tui.commands.context import Context
from tui.commands.resolve import room_id


async def friends(ctx: Context) -> int:
    action, user = ctx.args.action, getattr(ctx.args, "user", None)
    async with ctx.client() as client:
        api = client.api
        if action == "list":
            data = await api.friends()
            data["blocked"] = await api.blocks()
            ctx.out(data, _friends_text(data))
            return 0
        assert user is not None
        result: Any
        if action == "add":
            result = await api.request_friend(user)
            text = (
                f"you and {user} are friends now"
                if result.get("status") == "friends"
                else f"friend request sent to {user}"
            )
        else:
            call = {
                "accept": api.accept_friend,
                "decline": api.decline_friend,
                "cancel": api.cancel_request,
                "remove": api.remove_friend,
                "block": api.block,
                "unblock": api.unblock,
            }[action]
            result = await call(user)
            text = str(result.get("message", "done"))
    ctx.out({"action": action, "user": user, **result}, text)
    return 0


def _friends_text(data: dict[str, Any]) -> str:
    lines = [f"friends: {', '.join(f['id'] for f in data['friends']) or '(none)'}"]
    if data["incoming"]:
        lines.append(
            f"asking you: {', '.join(p['id'] for p in data['incoming'])}"
            " (sealchat friends accept USER)"
        )
    if data["outgoing"]:
        lines.append(f"you asked: {', '.join(p['id'] for p in data['outgoing'])}")
    if data["blocked"]:
        lines.append(f"blocked: {', '.join(p['id'] for p in data['blocked'])}")
    return "\n".join(lines)


async def rooms(ctx: Context) -> int:
    args = ctx.args
    action = args.action
    async with ctx.client() as client:
        api, actions = client.api, client.rooms
        if action == "list":
            listed = await api.rooms()
            invites = await api.invites()
            lines = [
                f"{r['id']}  {r['kind']:6}  {r.get('name') or '(1:1)'}  "
                f"{r['member_count']} members  {r['role']}"
                for r in listed
            ]
            lines += [f"invited: {i['room']}  {i.get('name') or ''}  by {i['by']}" for i in invites]
            ctx.out({"rooms": listed, "invites": invites}, "\n".join(lines) or "(no rooms)")
            return 0
        if action == "create":
            room = await actions.create(args.name, args.topic or "")
            ctx.out(room, f"created {room['name']!r}: {room['id']}")
            return 0
        rid = await room_id(client, args.room, invites=action in ("join", "decline"))
        if action == "show":
            room = await api.room(rid)
            members = ", ".join(f"{m['id']} ({m['role']})" for m in room["members"])
            ctx.out(room, f"{rid}  {room.get('name') or '(1:1)'}\nmembers: {members}")
            return 0
        if action == "invite":
            await actions.invite(rid, args.user)
            text = f"invited {args.user} to {rid}"
        elif action == "join":
            await actions.join(rid, client.user)
            text = f"joined {rid}"
        elif action == "decline":
            await api.decline_invite(rid)
            text = f"declined the invite to {rid}"
        elif action == "kick":
            await actions.kick(rid, args.user)
            text = f"removed {args.user} from {rid}"
        elif action == "leave":
            ctx.confirm(f"leave {args.room} ({rid})? This cannot be undone")
            await actions.leave(rid)
            text = f"left {rid}"
        else:  # delete
            ctx.confirm(f"delete {args.room} ({rid}) for every member? This cannot be undone")
            await actions.delete(rid)
            text = f"deleted {rid}"
    ctx.out({"action": action, "room": rid}, text)
    return 0
