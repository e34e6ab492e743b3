"""Optional API keys: ``Authorization: Bearer <key>`` on the ``/v1`` routes when keys are configured."""

from __future__ import annotations

import hmac

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.problems import Problem

bearer = HTTPBearer(auto_error=False, description="Required when STLSNN_API_KEYS is set")


def key_is_valid(keys: list[str], token: str | None) -> bool:
    """Whether ``token`` is one of ``keys`` (constant-time compare)."""
    return token is not None and any(hmac.compare_digest(token.encode(), key.encode()) for key in keys)


async def require_api_key(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
    """Pass when no keys are configured or the bearer token matches one (constant-time compare)."""
    keys = request.app.state.context.settings.api_key_list
    if not keys:
        return
    if not key_is_valid(keys, credentials.credentials if credentials is not None else None):
        raise Problem(
            401,
            "unauthorized",
            "a valid API key is required: Authorization: Bearer <key>",
            headers={"WWW-Authenticate": "Bearer"},
        )
