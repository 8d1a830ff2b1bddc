"""Thin-view helpers: parse a JSON body into a typed DTO, answer JSON, and describe the
routes as OpenAPI from the same table that registers them (so the document cannot drift)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from backend.common.errors import ApiError
from backend.protocol.errors import HTTP_STATUS, ErrorCode

M = TypeVar("M", bound=BaseModel)
View = Callable[[web.Request], Awaitable[web.StreamResponse]]


_SHAPE_ERRORS = frozenset({"string_pattern_mismatch", "string_too_short", "string_too_long"})


def _field_description(model: type[BaseModel], loc: tuple[int | str, ...]) -> str | None:
    """The documented shape of the field at ``loc``, following nested models."""
    current: Any = model
    info = None
    for part in loc:
        fields = getattr(current, "model_fields", None)
        if not isinstance(part, str) or fields is None or part not in fields:
            return None
        info = fields[part]
        current = info.annotation
    return None if info is None else info.description


def _describe(exc: ValidationError, model: type[BaseModel]) -> str:
    """The first problem, naming the field but never echoing the value (it may be a password).

    A value of the wrong shape is answered with the shape people should type, not a regex.
    """
    err = exc.errors()[0]
    loc = tuple(err["loc"])
    where = ".".join(str(p) for p in loc) or "body"
    if err["type"] in _SHAPE_ERRORS and (shape := _field_description(model, loc)):
        return f"{where}: must be {shape}"
    return f"{where}: {err['msg']}"


async def read_json(request: web.Request, model: type[M]) -> M:
    """Parse and validate the request body, or raise a clear ApiError."""
    raw = await request.read()  # aiohttp enforces client_max_size (413) here
    try:
        data = json.loads(raw or b"null")
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ApiError(ErrorCode.BAD_JSON, "request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(ErrorCode.BAD_JSON, "request body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(ErrorCode.INVALID, _describe(exc, model)) from None


def parse_model(model: type[M], data: dict[str, Any]) -> M:
    """Validate non-body input (path or query parameters) the same way."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(ErrorCode.INVALID, _describe(exc, model)) from None


def reply(model: BaseModel, *, status: int = 200) -> web.Response:
    return web.json_response(model.model_dump(mode="json", exclude_none=True), status=status)


class ErrorBody(BaseModel):
    class Detail(BaseModel):
        code: ErrorCode
        message: str

    error: Detail


_BINARY = {"type": "string", "format": "binary"}


@dataclass(frozen=True, slots=True)
class RouteDoc:
    method: str
    path: str
    handler: View
    summary: str
    body: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    auth: bool = True
    errors: tuple[ErrorCode, ...] = ()
    query: type[BaseModel] | None = None
    """The query string's model: each field becomes a query parameter."""
    octets: bool = False
    """The body (when ``body`` is None) or the response (when ``response`` is None) is raw
    ``application/octet-stream``, as for encrypted attachments."""


@dataclass
class RouteTable:
    """Every route of one service, registered on its app and described in its OpenAPI."""

    service: str
    routes: list[RouteDoc] = field(default_factory=list)

    def add(self, method: str, path: str, handler: View, summary: str, **doc: Any) -> None:
        self.routes.append(RouteDoc(method, path, handler, summary, **doc))

    def register(self, app: web.Application) -> None:
        for r in self.routes:
            app.router.add_route(r.method, r.path, r.handler)

    def openapi(self, *, title: str, version: str) -> dict[str, Any]:
        schemas: dict[str, Any] = {}

        def ref(model: type[BaseModel]) -> dict[str, str]:
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(schema.pop("$defs", {}))
            schemas[model.__name__] = schema
            return {"$ref": f"#/components/schemas/{model.__name__}"}

        error_ref = ref(ErrorBody)
        paths: dict[str, dict[str, Any]] = {}
        for r in self.routes:
            op: dict[str, Any] = {"summary": r.summary, "operationId": r.handler.__name__}
            params = [seg[1:-1] for seg in r.path.split("/") if seg.startswith("{")]
            if params:
                op["parameters"] = [
                    {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                    for p in params
                ]
            if r.query is not None:
                required = r.query.model_json_schema().get("required", [])
                op.setdefault("parameters", []).extend(
                    {
                        "name": name,
                        "in": "query",
                        "required": name in required,
                        "schema": prop,
                    }
                    for name, prop in r.query.model_json_schema()["properties"].items()
                )
            binary = {"application/octet-stream": {"schema": _BINARY}}
            if r.body is not None:
                op["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": ref(r.body)}},
                }
            elif r.octets and r.method in ("POST", "PUT"):
                op["requestBody"] = {"required": True, "content": binary}
            ok: dict[str, Any] = {"description": "success"}
            if r.response is not None:
                ok["content"] = {"application/json": {"schema": ref(r.response)}}
            elif r.octets and r.method == "GET":
                ok["content"] = binary
            responses: dict[str, Any] = {str(r.status): ok}
            codes = set(r.errors) | ({ErrorCode.UNAUTHORIZED} if r.auth else set())
            if r.body is not None:
                codes |= {ErrorCode.BAD_JSON, ErrorCode.INVALID, ErrorCode.TOO_LARGE}
            for code in sorted(codes):
                responses.setdefault(
                    str(HTTP_STATUS[code]),
                    {
                        "description": code.value,
                        "content": {"application/json": {"schema": error_ref}},
                    },
                )
            op["responses"] = responses
            if r.auth:
                op["security"] = [{"bearer": []}]
            paths.setdefault(f"/{self.service}{r.path}", {})[r.method.lower()] = op
        return {
            "openapi": "3.1.0",
            "info": {"title": title, "version": version},
            "paths": paths,
            "components": {
                "schemas": schemas,
                "securitySchemes": {
                    "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
                },
            },
        }
