"""HTTP edge of friends, blocks and rooms: parse, call the social service, reply."""

from __future__ import annotations

import re

from aiohttp import web

from backend.auth.schemas import Message
from backend.chat import schemas
from backend.chat.rooms import not_found
from backend.chat.social import SocialService
from backend.common.api import RouteTable, parse_model, read_json, reply
from backend.common.typedefs import CHAT_RUNTIME, GUARD
from backend.protocol.errors import ErrorCode as E

_ROOM_ID = re.compile(schemas.ROOM_ID_PATTERN)


def _social(request: web.Request) -> SocialService:
    return request.config_dict[CHAT_RUNTIME].social


async def _caller(request: web.Request) -> str:
    return (await request.config_dict[GUARD].require(request)).sub


def _room(request: web.Request) -> str:
    """The room id from the path; a malformed one names no room (404, like a hidden one)."""
    room_id = request.match_info["room_id"]
    if not _ROOM_ID.match(room_id):
        raise not_found(room_id)
    return room_id


def _user(request: web.Request) -> str:
    return parse_model(schemas.UserPath, {"id": request.match_info["user_id"]}).id


async def _confirmed(request: web.Request) -> bool:
    """``confirm`` from the body; no body at all counts as not confirmed."""
    if not await request.read():
        return False
    return (await read_json(request, schemas.Confirm)).confirm


def _ok(text: str) -> web.Response:
    return reply(Message(message=text))


# --- friends and blocks ----------------------------------------------------------------------
async def list_friends(request: web.Request) -> web.Response:
    return reply(await _social(request).friends.list_friends(await _caller(request)))


async def request_friend(request: web.Request) -> web.Response:
    me = await _caller(request)
    body = await read_json(request, schemas.UserRef)
    return reply(await _social(request).friends.request(me, body.user))


async def accept_friend(request: web.Request) -> web.Response:
    await _social(request).friends.accept(await _caller(request), _user(request))
    return _ok("friend request accepted")


async def decline_friend(request: web.Request) -> web.Response:
    await _social(request).friends.decline(await _caller(request), _user(request))
    return _ok("friend request declined")


async def cancel_request(request: web.Request) -> web.Response:
    await _social(request).friends.cancel(await _caller(request), _user(request))
    return _ok("friend request cancelled")


async def remove_friend(request: web.Request) -> web.Response:
    await _social(request).friends.remove(await _caller(request), _user(request))
    return _ok("friend removed")


async def list_blocks(request: web.Request) -> web.Response:
    return reply(await _social(request).friends.list_blocked(await _caller(request)))


async def block(request: web.Request) -> web.Response:
    me = await _caller(request)
    body = await read_json(request, schemas.UserRef)
    await _social(request).friends.block(me, body.user)
    return _ok("user blocked")


async def unblock(request: web.Request) -> web.Response:
    await _social(request).friends.unblock(await _caller(request), _user(request))
    return _ok("user unblocked")


# --- rooms -----------------------------------------------------------------------------------
async def list_rooms(request: web.Request) -> web.Response:
    return reply(await _social(request).rooms.list_rooms(await _caller(request)))


async def create_group(request: web.Request) -> web.Response:
    me = await _caller(request)
    body = await read_json(request, schemas.GroupIn)
    return reply(await _social(request).rooms.create_group(me, body), status=201)


async def open_direct(request: web.Request) -> web.Response:
    me = await _caller(request)
    body = await read_json(request, schemas.UserRef)
    room, created = await _social(request).rooms.open_direct(me, body.user)
    return reply(room, status=201 if created else 200)


async def get_room(request: web.Request) -> web.Response:
    return reply(await _social(request).rooms.get_room(await _caller(request), _room(request)))


async def list_members(request: web.Request) -> web.Response:
    me = await _caller(request)
    return reply(await _social(request).rooms.list_members(me, _room(request)))


async def membership_log(request: web.Request) -> web.Response:
    me = await _caller(request)
    query = parse_model(schemas.LogQuery, dict(request.query))
    return reply(await _social(request).rooms.membership_log(me, _room(request), query))


async def invite(request: web.Request) -> web.Response:
    me = await _caller(request)
    room_id = _room(request)
    body = await read_json(request, schemas.UserRef)
    await _social(request).rooms.invite(me, room_id, body.user)
    return reply(Message(message="invited"), status=201)


async def list_invites(request: web.Request) -> web.Response:
    return reply(await _social(request).rooms.list_invites(await _caller(request)))


async def join(request: web.Request) -> web.Response:
    return reply(await _social(request).rooms.join(await _caller(request), _room(request)))


async def decline_invite(request: web.Request) -> web.Response:
    await _social(request).rooms.decline(await _caller(request), _room(request))
    return _ok("invite declined")


async def leave(request: web.Request) -> web.Response:
    me = await _caller(request)
    room_id = _room(request)
    await _social(request).rooms.leave(me, room_id, await _confirmed(request))
    return _ok("left the room")


async def kick(request: web.Request) -> web.Response:
    me = await _caller(request)
    room_id = _room(request)
    body = await read_json(request, schemas.UserRef)
    await _social(request).rooms.kick(me, room_id, body.user)
    return _ok("member removed")


async def set_role(request: web.Request) -> web.Response:
    me = await _caller(request)
    room_id = _room(request)
    body = await read_json(request, schemas.RoleIn)
    await _social(request).rooms.set_role(me, room_id, body)
    return _ok("role changed")


async def delete_room(request: web.Request) -> web.Response:
    me = await _caller(request)
    room_id = _room(request)
    await _social(request).rooms.delete(me, room_id, await _confirmed(request))
    return _ok("room deleted")


def add_social_routes(t: RouteTable) -> None:
    """Friends, blocks, rooms and invites, under the chat service's prefix."""
    user, room = (E.INVALID, E.NOT_FOUND), (E.NOT_FOUND,)
    t.add(
        "GET", "/friends", list_friends, "Friends and pending requests", response=schemas.FriendList
    )
    t.add(
        "POST",
        "/friends/requests",
        request_friend,
        "Ask a user for friendship (accepts theirs if they asked first)",
        body=schemas.UserRef,
        response=schemas.FriendRequestOut,
        errors=(E.NOT_FOUND, E.CONFLICT, E.FORBIDDEN),
    )
    for path, view, summary in (
        ("/friends/requests/{user_id}/accept", accept_friend, "Accept a friend request"),
        ("/friends/requests/{user_id}/decline", decline_friend, "Decline a friend request"),
    ):
        t.add("POST", path, view, summary, response=Message, errors=user)
    t.add(
        "DELETE",
        "/friends/requests/{user_id}",
        cancel_request,
        "Cancel the caller's own friend request",
        response=Message,
        errors=user,
    )
    t.add(
        "DELETE",
        "/friends/{user_id}",
        remove_friend,
        "End a friendship",
        response=Message,
        errors=user,
    )
    t.add("GET", "/blocks", list_blocks, "Users the caller blocked", response=schemas.BlockList)
    t.add(
        "POST",
        "/blocks",
        block,
        "Block a user: unfriends, drops requests, leaves your 1:1 room with them",
        body=schemas.UserRef,
        response=Message,
        errors=(E.NOT_FOUND,),
    )
    t.add("DELETE", "/blocks/{user_id}", unblock, "Unblock a user", response=Message, errors=user)
    t.add("GET", "/rooms", list_rooms, "The caller's rooms", response=schemas.RoomList)
    t.add(
        "POST",
        "/rooms",
        create_group,
        "Create a group room (the caller is its creator and admin)",
        body=schemas.GroupIn,
        response=schemas.RoomOut,
        status=201,
    )
    t.add(
        "POST",
        "/rooms/direct",
        open_direct,
        "Open (201) or reopen (200) the 1:1 room with a friend",
        body=schemas.UserRef,
        response=schemas.RoomOut,
        status=201,
        errors=(E.FORBIDDEN,),
    )
    t.add(
        "GET",
        "/invites",
        list_invites,
        "Room invites waiting for the caller",
        response=schemas.InviteList,
    )
    t.add(
        "GET",
        "/rooms/{room_id}",
        get_room,
        "A room the caller is in",
        response=schemas.RoomOut,
        errors=room,
    )
    t.add(
        "DELETE",
        "/rooms/{room_id}",
        delete_room,
        "Delete a group room (creator; needs confirm: true); every member is told",
        body=schemas.Confirm,
        response=Message,
        errors=(E.NOT_FOUND, E.FORBIDDEN),
    )
    t.add(
        "GET",
        "/rooms/{room_id}/members",
        list_members,
        "Members of a room the caller is in",
        response=schemas.MemberList,
        errors=room,
    )
    t.add(
        "GET",
        "/rooms/{room_id}/membership",
        membership_log,
        "The room's membership log after a seq (?after=SEQ&limit=N)",
        response=schemas.MembershipLog,
        errors=(E.NOT_FOUND, E.INVALID),
    )
    t.add(
        "POST",
        "/rooms/{room_id}/invites",
        invite,
        "Invite a friend into a group room",
        body=schemas.UserRef,
        response=Message,
        status=201,
        errors=(E.NOT_FOUND, E.FORBIDDEN, E.CONFLICT),
    )
    t.add(
        "POST",
        "/rooms/{room_id}/join",
        join,
        "Accept an invite",
        response=schemas.RoomOut,
        errors=room,
    )
    t.add(
        "POST",
        "/rooms/{room_id}/decline",
        decline_invite,
        "Decline an invite",
        response=Message,
        errors=room,
    )
    t.add(
        "POST",
        "/rooms/{room_id}/leave",
        leave,
        "Leave a room (needs confirm: true)",
        body=schemas.Confirm,
        response=Message,
        errors=room,
    )
    t.add(
        "POST",
        "/rooms/{room_id}/kick",
        kick,
        "Remove a member (admins; only the creator removes an admin)",
        body=schemas.UserRef,
        response=Message,
        errors=(E.NOT_FOUND, E.FORBIDDEN),
    )
    t.add(
        "POST",
        "/rooms/{room_id}/role",
        set_role,
        "Make a member admin, or an admin member again",
        body=schemas.RoleIn,
        response=Message,
        errors=(E.NOT_FOUND, E.FORBIDDEN, E.CONFLICT),
    )
