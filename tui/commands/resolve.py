"""ROOM on the command line: a room id, a room name, or ``@user`` for the 1:1 room."""

from __future__ import annotations

from tui.client.client import ChatClient
from tui.commands.context import CommandError


async def room_id(client: ChatClient, spec: str, *, invites: bool = False) -> str:
    """The id ``spec`` names among the caller's rooms (and invites, when asked).

    ``@user`` opens the 1:1 room with that friend when it does not exist yet.
    """
    if spec.startswith("@"):
        user = spec[1:]
        if not user:
            raise CommandError("@ needs a user id, e.g. @bob")
        rooms = await client.api.rooms()
        for r in rooms:
            if r["kind"] == "direct":
                members = (await client.api.room(r["id"]))["members"]
                if any(m["id"] == user for m in members):
                    return str(r["id"])
        return str((await client.rooms.direct(user))["id"])
    rooms = await client.api.rooms()
    if any(r["id"] == spec for r in rooms):
        return spec
    named = [r for r in rooms if r.get("name") == spec]
    if invites:
        pending = await client.api.invites()
        if any(i["room"] == spec for i in pending):
            return spec
        named += [
            {"id": i["room"], "name": i.get("name")} for i in pending if i.get("name") == spec
        ]
    if len(named) == 1:
        return str(named[0]["id"])
    if len(named) > 1:
        ids = ", ".join(r["id"] for r in named)
        raise CommandError(f"several rooms are called {spec!r} ({ids}): give the room id")
    if spec.startswith("r_"):
        return spec  # perhaps a room this call cannot list: the server will say
    raise CommandError(f"no room {spec!r}: see `sealchat rooms list`, or use @user for a 1:1 room")
