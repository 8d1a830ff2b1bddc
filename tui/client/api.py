"""Every REST call of the auth and chat services, one method each (docs/auth.md,
docs/protocol.md). Thin on purpose: the server's JSON comes back as it is."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tui.client.errors import ApiError
from tui.client.rest import Rest


def _p(part: str) -> str:
    return quote(part, safe="")


class Api:
    def __init__(self, rest: Rest) -> None:
        self.rest = rest

    # --- auth --------------------------------------------------------------------------------
    async def signup(self, user: str, password: str, email: str) -> Any:
        body = {"id": user, "passwd": password, "email": email}
        return await self.rest.call("POST", "/auth/signup", body, auth=False)

    async def login(self, user: str, password: str) -> dict[str, Any]:
        body = {"id": user, "passwd": password}
        return await self.rest.call("POST", "/auth/login", body, auth=False)  # type: ignore[no-any-return]

    async def refresh(self, refresh_token: str) -> dict[str, Any]:
        body = {"refresh_token": refresh_token}
        return await self.rest.call("POST", "/auth/refresh", body, auth=False)  # type: ignore[no-any-return]

    async def logout(self) -> Any:
        return await self.rest.call("POST", "/auth/logout")

    async def devices(self) -> list[dict[str, Any]]:
        return (await self.rest.call("GET", "/auth/devices"))["devices"]  # type: ignore[no-any-return]

    async def register_device(self, body: dict[str, Any]) -> Any:
        return await self.rest.call("POST", "/auth/devices", body)

    async def delete_device(self, device: str) -> Any:
        return await self.rest.call("DELETE", f"/auth/devices/{_p(device)}")

    async def upload_keys(self, body: dict[str, Any]) -> int:
        return int((await self.rest.call("POST", "/auth/keys/upload", body))["one_time_key_count"])

    async def key_count(self, device: str) -> int:
        answer = await self.rest.call("GET", f"/auth/keys/count/{_p(device)}")
        return int(answer["one_time_key_count"])

    async def query_keys(self, users: list[str]) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for i in range(0, len(users), 100):
            answer = await self.rest.call("POST", "/auth/keys/query", {"users": users[i : i + 100]})
            out.update(answer["devices"])
        return out

    async def claim_keys(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self.rest.call("POST", "/auth/keys/claim", body)  # type: ignore[no-any-return]

    async def user_exists(self, user: str) -> bool:
        try:
            await self.rest.call("GET", f"/auth/getuser/{_p(user)}")
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    # --- friends and blocks ------------------------------------------------------------------
    async def friends(self) -> dict[str, Any]:
        return await self.rest.call("GET", "/chat/friends")  # type: ignore[no-any-return]

    async def request_friend(self, user: str) -> dict[str, Any]:
        return await self.rest.call("POST", "/chat/friends/requests", {"user": user})  # type: ignore[no-any-return]

    async def accept_friend(self, user: str) -> Any:
        return await self.rest.call("POST", f"/chat/friends/requests/{_p(user)}/accept")

    async def decline_friend(self, user: str) -> Any:
        return await self.rest.call("POST", f"/chat/friends/requests/{_p(user)}/decline")

    async def cancel_request(self, user: str) -> Any:
        return await self.rest.call("DELETE", f"/chat/friends/requests/{_p(user)}")

    async def remove_friend(self, user: str) -> Any:
        return await self.rest.call("DELETE", f"/chat/friends/{_p(user)}")

    async def blocks(self) -> list[dict[str, Any]]:
        return (await self.rest.call("GET", "/chat/blocks"))["blocked"]  # type: ignore[no-any-return]

    async def block(self, user: str) -> Any:
        return await self.rest.call("POST", "/chat/blocks", {"user": user})

    async def unblock(self, user: str) -> Any:
        return await self.rest.call("DELETE", f"/chat/blocks/{_p(user)}")

    # --- rooms -------------------------------------------------------------------------------
    async def rooms(self) -> list[dict[str, Any]]:
        return (await self.rest.call("GET", "/chat/rooms"))["rooms"]  # type: ignore[no-any-return]

    async def room(self, room: str) -> dict[str, Any]:
        return await self.rest.call("GET", f"/chat/rooms/{_p(room)}")  # type: ignore[no-any-return]

    async def create_room(self, name: str, topic: str = "") -> dict[str, Any]:
        body = {"name": name, "topic": topic}
        return await self.rest.call("POST", "/chat/rooms", body)  # type: ignore[no-any-return]

    async def open_direct(self, user: str) -> dict[str, Any]:
        return await self.rest.call("POST", "/chat/rooms/direct", {"user": user})  # type: ignore[no-any-return]

    async def invites(self) -> list[dict[str, Any]]:
        return (await self.rest.call("GET", "/chat/invites"))["invites"]  # type: ignore[no-any-return]

    async def invite(self, room: str, user: str) -> Any:
        return await self.rest.call("POST", f"/chat/rooms/{_p(room)}/invites", {"user": user})

    async def join(self, room: str) -> dict[str, Any]:
        return await self.rest.call("POST", f"/chat/rooms/{_p(room)}/join")  # type: ignore[no-any-return]

    async def decline_invite(self, room: str) -> Any:
        return await self.rest.call("POST", f"/chat/rooms/{_p(room)}/decline")

    async def leave(self, room: str) -> Any:
        return await self.rest.call("POST", f"/chat/rooms/{_p(room)}/leave", {"confirm": True})

    async def kick(self, room: str, user: str) -> Any:
        return await self.rest.call("POST", f"/chat/rooms/{_p(room)}/kick", {"user": user})

    async def set_role(self, room: str, user: str, role: str) -> Any:
        body = {"user": user, "role": role}
        return await self.rest.call("POST", f"/chat/rooms/{_p(room)}/role", body)

    async def delete_room(self, room: str) -> Any:
        return await self.rest.call("DELETE", f"/chat/rooms/{_p(room)}", {"confirm": True})

    async def membership_log(self, room: str) -> list[dict[str, Any]]:
        """The whole log, paged (``after`` = last seen seq until ``last_seq``)."""
        entries: list[dict[str, Any]] = []
        after = 0
        while True:
            page = await self.rest.call(
                "GET",
                f"/chat/rooms/{_p(room)}/membership",
                params={"after": after, "limit": 500},
            )
            entries.extend(page["entries"])
            if not page["entries"] or page["entries"][-1]["seq"] >= page["last_seq"]:
                return entries
            after = page["entries"][-1]["seq"]

    async def sign_log(self, room: str, body: dict[str, Any]) -> Any:
        return await self.rest.call("POST", f"/chat/rooms/{_p(room)}/membership/signatures", body)

    # --- blobs -------------------------------------------------------------------------------
    async def upload_blob(self, room: str, payload: bytes) -> dict[str, Any]:
        return await self.rest.upload("/chat/blobs", payload, {"room": room})  # type: ignore[no-any-return]

    async def download_blob(self, blob: str) -> bytes:
        return await self.rest.download(f"/chat/blobs/{_p(blob)}")
