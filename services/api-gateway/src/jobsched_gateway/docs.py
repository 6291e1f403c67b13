"""`/docs`: Swagger UI from files the gateway serves itself (swagger_ui/, vendored from
swagger-ui-dist), so that it works offline and under the content security policy."""

import base64
import hashlib
import re
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from .security_headers import content_security_policy

ASSETS_DIR = Path(__file__).parent / "swagger_ui"
ASSETS_URL = "/docs/assets"
INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)


def _script_hashes(html: bytes) -> tuple[str, ...]:
    """The CSP hash of each inline script: FastAPI's page starts Swagger UI with one."""
    return tuple(
        base64.b64encode(hashlib.sha256(script).digest()).decode()
        for script in INLINE_SCRIPT.findall(html)
    )


def add_docs(app: FastAPI) -> None:
    """Serves the page and its assets; the app must be made with `docs_url=None`."""
    page = get_swagger_ui_html(
        openapi_url=app.openapi_url or "/openapi.json",
        title=f"{app.title} - API",
        swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS_URL}/favicon-32x32.png",
        # The validator badge would load an image from swagger.io.
        swagger_ui_parameters={"validatorUrl": None},
    )
    html = bytes(page.body)
    policy = content_security_policy(_script_hashes(html))

    async def docs() -> HTMLResponse:
        return HTMLResponse(html, headers={"content-security-policy": policy})

    app.add_api_route("/docs", docs, include_in_schema=False, response_class=HTMLResponse)
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS_DIR), name="docs-assets")
