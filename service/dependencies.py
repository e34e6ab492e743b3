"""The app-wide objects routes need, gathered in one ``AppContext`` that one dependency hands out."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from fastapi import Request

from service.energy import EnergyProfile
from service.metrics import Metrics
from service.registry import Registry
from service.settings import Settings


@dataclass
class AppContext:
    settings: Settings
    registry: Registry
    metrics: Metrics
    profiles: dict[str, EnergyProfile]
    decode_pool: ThreadPoolExecutor
    open_streams: int = 0  # WebSocket streams now open (changed on the event loop only)


async def get_context(request: Request) -> AppContext:
    return request.app.state.context
