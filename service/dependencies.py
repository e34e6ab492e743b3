"""FastAPI dependencies: the app-wide objects a route needs, taken from ``app.state``."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from fastapi import Request

from service.energy import EnergyProfile
from service.metrics import Metrics
from service.registry import Registry
from service.settings import Settings


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_registry(request: Request) -> Registry:
    return request.app.state.registry


async def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


async def get_profiles(request: Request) -> dict[str, EnergyProfile]:
    return request.app.state.energy_profiles


async def get_decode_pool(request: Request) -> ThreadPoolExecutor:
    return request.app.state.decode_pool
