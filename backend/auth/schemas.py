"""Request and response bodies of the auth API (validated at the edge, shown in OpenAPI)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints

UserId = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9_.-]{3,32}$"),
    Field(description="3 to 32 characters: a-z, 0-9, '_', '.', '-'"),
]
# Login takes any string a person might type, so a malformed id fails like a wrong password.
LoginId = Annotated[str, StringConstraints(min_length=1, max_length=1024)]
Password = Annotated[
    str, StringConstraints(min_length=8, max_length=1024), Field(description="8 to 1024 characters")
]
AnyPassword = Annotated[str, StringConstraints(min_length=1, max_length=1024)]
DeviceId = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9_-]{4,32}$"),
    Field(description="4 to 32 characters: A-Z, a-z, 0-9, '_', '-'"),
]
KeyId = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9_:.+/=-]{1,64}$"),
    Field(description="1 to 64 characters: letters, digits and _ : . + / = -"),
]
PublicKey = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9+/]{43}$"),
    Field(description="a 32-byte key in unpadded standard base64 (43 characters)"),
]
Signature = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9+/]{86}$"),
    Field(description="a 64-byte Ed25519 signature in unpadded standard base64 (86 characters)"),
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class SignupIn(Strict):
    id: UserId
    passwd: Password
    email: EmailStr


class Message(BaseModel):
    message: str


class LoginIn(Strict):
    id: LoginId
    passwd: AnyPassword


class Tokens(BaseModel):
    token: str
    """The access token (the seed's field name)."""
    refresh_token: str
    expires_in: int
    token_type: str = "Bearer"  # noqa: S105 (a scheme name, not a secret)
    user: str


class RefreshIn(Strict):
    refresh_token: Annotated[str, StringConstraints(min_length=16, max_length=128)]


class UserOut(BaseModel):
    id: str


class IdentityKeys(Strict):
    ed25519: PublicKey
    curve25519: PublicKey


class DeviceIn(Strict):
    device_id: DeviceId
    display_name: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "sealchat"
    keys: IdentityKeys
    signature: Signature
    """Ed25519 signature of ``backend.protocol.signing.device_payload`` by ``keys.ed25519``."""


class DeviceOut(BaseModel):
    user_id: str
    device_id: str
    display_name: str
    keys: IdentityKeys
    signature: str
    created_at: datetime


class DeviceList(BaseModel):
    devices: list[DeviceOut]


class SignedKey(Strict):
    key: PublicKey
    signature: Signature
    """Ed25519 signature of ``backend.protocol.signing.one_time_key_payload``."""


class FallbackKey(SignedKey):
    key_id: KeyId


class KeysUploadIn(Strict):
    device_id: DeviceId
    one_time_keys: dict[KeyId, SignedKey] = Field(default_factory=dict, max_length=100)
    fallback_key: FallbackKey | None = None


class KeyCount(BaseModel):
    one_time_key_count: int


class KeysQueryIn(Strict):
    users: list[UserId] = Field(min_length=1, max_length=100)


class KeysQueryOut(BaseModel):
    devices: dict[str, list[DeviceOut]]


class DeviceRef(Strict):
    user_id: UserId
    device_id: DeviceId


class KeysClaimIn(Strict):
    devices: list[DeviceRef] = Field(min_length=1, max_length=100)


class ClaimedKey(BaseModel):
    key_id: str
    key: str
    signature: str
    fallback: bool


class KeysClaimOut(BaseModel):
    one_time_keys: dict[str, dict[str, ClaimedKey]]
    """user → device → key; devices with no key left are absent."""


class DeleteAccountIn(Strict):
    passwd: AnyPassword
    confirm: bool = False


class Health(BaseModel):
    message: str


class Jwk(BaseModel):
    kty: str
    crv: str
    x: str
    kid: str
    alg: str
    use: str


class Jwks(BaseModel):
    keys: list[Jwk]
