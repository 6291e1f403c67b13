"""The answer to a request that fails validation: FastAPI's 422, written as ASCII JSON."""

import json
import math
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse


class AsciiJSONResponse(JSONResponse):
    """JSON with non-ASCII characters escaped, so that a lone surrogate (valid in JSON's
    `\\u` escapes, invalid in UTF-8) is written back as the client sent it."""

    def render(self, content: Any) -> bytes:
        return json.dumps(_finite(content), allow_nan=False, separators=(",", ":")).encode()


def _finite(value: Any) -> Any:
    """NaN and the infinities (which Python's JSON reader takes) as text: JSON has no
    number for them, and an error that echoes one must still be written."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    """The errors echo the input, which may be a string UTF-8 cannot carry."""
    return AsciiJSONResponse({"detail": jsonable_encoder(exc.errors())}, 422)
