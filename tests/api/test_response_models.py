"""Every JSON operation declares its answer: a response model whose schema /openapi.json gives,
so clients (and schemathesis) can check a 200 against it."""

from __future__ import annotations

from typing import Any

from app.config import Settings
from app.main import create_app

DOC: dict[str, Any] = create_app(Settings(database_url="sqlite://")).openapi()
MODEL_ROUTES = {"/api/v1/eras", "/api/v1/scenarios", "/api/v1/simulations", "/api/v1/protocol",
                "/api/v1/hosts/{host}/projection", "/api/v1/hosts/{host}/refcounts"}


def _ok_schema(op: dict[str, Any]) -> dict[str, Any] | None:
    schema: dict[str, Any] | None = (op["responses"].get("200", {}).get("content", {})
                                     .get("application/json", {}).get("schema"))
    return schema


def test_every_operation_has_a_response_model() -> None:
    missing = [f"{method.upper()} {path}" for path, ops in DOC["paths"].items()
               for method, op in ops.items() if "$ref" not in (_ok_schema(op) or {})]
    assert missing == []
    assert set(DOC["paths"]) >= MODEL_ROUTES


def test_every_referenced_model_is_a_component() -> None:
    components = DOC["components"]["schemas"]
    for ops in DOC["paths"].values():
        for op in ops.values():
            ref = (_ok_schema(op) or {})["$ref"]
            assert ref.startswith("#/components/schemas/")
            assert ref.removeprefix("#/components/schemas/") in components, ref
