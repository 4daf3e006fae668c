"""The published OpenAPI documents: FastAPI's, completed with what only the running app knows.

FastAPI builds each document from the pydantic models. Some limits come from
settings (texts per request, characters per text) and some values from the
loaded model (its labels); the apps check those themselves (413 for a size
limit, 422 for an unknown label). :func:`install_openapi` publishes them too,
so a client or a fuzzer that follows the document (schemathesis, in the tests
and in ``hybridroute bench fuzz``) knows which requests the service accepts,
and the document describes every status the service answers with.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI

from hybridroute.serving.schemas import ErrorBody

Document = dict[str, Any]

BEARER_SCHEME = "adminToken"  # the name of the admin token's security scheme in the edge document

# What each error status means, for the document (FastAPI would otherwise say "Successful Response" or nothing).
ERROR_MEANINGS: dict[int, str] = {
    400: "The body could not be read (not UTF-8, nested too deeply, ...)",
    401: "No admin token was given",
    403: "The admin token is wrong",
    404: "The thing the request names does not exist (or the feature is disabled)",
    409: "The request clashes with the service's state",
    413: "Too many texts, a text with too many characters, or a body over the byte limit",
    422: "The body is not JSON, or not of the documented shape",
    500: "The model failed",
    503: "Not ready yet (model loading) or shutting down",
}
# The 413 of a route whose body has no texts to count or measure (feedback, reload): only its byte limit applies.
ONLY_THE_BYTE_LIMIT: dict[int, str] = {413: "The body is over the route's byte limit"}


def error_responses(*statuses: int, meanings: Mapping[int, str] | None = None) -> dict[int | str, dict[str, Any]]:
    """FastAPI ``responses=`` for our error shape at the given statuses.

    ``meanings``: what some statuses mean for this route, instead of :data:`ERROR_MEANINGS`.

    Example: error_responses(404) -> {404: {"model": ErrorBody, "description": "The thing ... disabled)"}}
    """
    described = ERROR_MEANINGS | dict(meanings or {})
    return {status: {"model": ErrorBody, "description": described[status]} for status in statuses}


def request_schema(document: Document, model: str) -> dict[str, Any]:
    """The JSON schema of a request model inside an OpenAPI document (``components.schemas[model]``)."""
    try:
        schema: dict[str, Any] = document["components"]["schemas"][model]
    except KeyError as exc:
        raise KeyError(f"the OpenAPI document has no schema named {model!r}") from exc
    return schema


def set_text_limits(document: Document, model: str, max_items: int | None, max_chars: int) -> None:
    """Publish the size limits of a request model's text fields.

    A string property gets ``maxLength``; an array of strings gets ``maxItems`` (when ``max_items`` is given)
    and ``maxLength`` on its items.

    Example: {"text": {"type": "string"}} with max_chars=5 -> {"text": {"type": "string", "maxLength": 5}}
    """
    for prop in request_schema(document, model).get("properties", {}).values():
        if prop.get("type") == "string":
            prop["maxLength"] = max_chars
        elif prop.get("type") == "array" and prop.get("items", {}).get("type") == "string":
            prop["items"]["maxLength"] = max_chars
            if max_items is not None:
                prop["maxItems"] = max_items


def set_enum(document: Document, model: str, field: str, values: Sequence[str]) -> None:
    """Publish the values a request field accepts (e.g. the loaded model's labels)."""
    request_schema(document, model)["properties"][field]["enum"] = list(values)


def require_bearer(document: Document, path: str, method: str, description: str) -> None:
    """Declare that ``method path`` needs ``Authorization: Bearer <token>``."""
    schemes = document.setdefault("components", {}).setdefault("securitySchemes", {})
    schemes[BEARER_SCHEME] = {"type": "http", "scheme": "bearer", "description": description}
    document["paths"][path][method.lower()]["security"] = [{BEARER_SCHEME: []}]


def install_openapi(app: FastAPI, complete: Callable[[Document], None]) -> None:
    """Serve FastAPI's document for ``app``, completed by ``complete`` each time it is asked for.

    Not cached: what ``complete`` adds can change while the app runs (the labels appear once the model is loaded).
    """
    generate = app.openapi  # FastAPI's own (it caches the generated document on the app)

    def openapi() -> Document:
        document = copy.deepcopy(generate())
        complete(document)
        return document

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to customize the document


def header_doc(description: str) -> Mapping[str, Any]:
    """An OpenAPI response header of type string."""
    return {"description": description, "schema": {"type": "string"}}
