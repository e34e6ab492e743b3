"""The web page (DESIGN.md section 11): ``GET /`` and its files under ``/static``, open without a key.

The page itself holds no data; it calls the ``/v1`` API with the key the user types. Its
Content-Security-Policy allows this origin only, so the page can fetch nothing from elsewhere.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).resolve().parent.parent / "static"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)

router = APIRouter(include_in_schema=False)


@router.get("/")
async def index() -> FileResponse:
    return FileResponse(
        STATIC / "index.html",
        headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY, "Cache-Control": "no-cache"},
    )


def mount_page(app: FastAPI) -> None:
    """Serve ``/`` and ``/static/*``."""
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
