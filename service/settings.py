"""Every knob of the service, read from ``STLSNN_*`` environment variables (pydantic-settings).

Defaults suit a public endpoint on one box: uploads, event counts and durations are capped,
API keys and CORS are off until configured. The README's settings table mirrors this class.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

BUNDLED_EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


class Settings(BaseSettings):
    """Service configuration; each field ``foo`` is set by ``STLSNN_FOO``."""

    model_config = SettingsConfigDict(env_prefix="STLSNN_", extra="ignore", protected_namespaces=())

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    model_repository: Path = Path("model_repository")
    model_versions: str = Field("", description="pin versions: 'name=version,...' (default: latest of each)")
    default_model: str = "demo"
    backend: Literal["onnx", "torchscript"] = "onnx"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    inference_threads: int = Field(0, ge=0, description="intra-op threads per model (0 = runtime default)")
    cuda_graphs: bool = Field(
        False, description="TorchScript on CUDA: replay a CUDA graph per batch-size bucket (unmeasured on a GPU)"
    )
    onnx_io_binding: bool = Field(False, description="ONNX Runtime: bind inputs/outputs with io_binding()")

    max_batch_size: int = Field(32, ge=1)
    max_queue_delay_ms: float = Field(5.0, ge=0)
    batch_wait: Literal["adaptive", "fixed"] = Field(
        "adaptive", description="adaptive: wait for a fuller batch only while more requests are being decoded"
    )
    max_queue_size: int = Field(256, ge=1, description="samples waiting per model before 503")
    request_timeout_s: float = Field(30.0, gt=0)
    decode_workers: int = Field(4, ge=1)
    workers: int = Field(
        0, ge=0, description="server processes on the port (0 = one on a GPU, else one per core up to 8)"
    )
    energy_profile: str = Field("", description="default energy profile (empty: the model manifest's)")

    max_upload_bytes: int = Field(64 << 20, ge=1, description="request body limit (all files together)")
    max_files: int = Field(16, ge=1, description="files per request")
    max_events: int = Field(20_000_000, ge=1)
    max_duration_s: float = Field(600.0, gt=0, description="longest recording accepted")
    max_decompressed_bytes: int = Field(1 << 30, ge=1)
    max_timeline_windows: int = Field(2048, ge=1, description="windows one timeline request may cut")
    max_streams: int = Field(16, ge=1, description="WebSocket streams open at once; more are closed with 1013")
    stream_max_pending_windows: int = Field(8, ge=1, description="windows waiting for the model per stream; more drop")
    stream_max_message_bytes: int = Field(16 << 20, ge=1024, description="largest WebSocket message (1009 beyond)")
    stream_max_buffered_events: int = Field(
        4_000_000, ge=1, description="events one stream may hold for windows not yet closed (1009 beyond)"
    )

    api_keys: str = Field("", description="comma-separated Bearer keys; empty = no auth")
    cors_origins: str = Field("", description="comma-separated origins; empty = CORS off")
    graceful_shutdown_s: float = Field(30.0, ge=0)
    retry_after_s: int = Field(1, ge=1)
    log_level: str = "info"
    nvml: bool = True
    examples_dir: Path = Field(
        BUNDLED_EXAMPLES, description="recordings the web page offers (GET /v1/examples); missing = none"
    )

    @field_validator("default_model")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    @property
    def api_key_list(self) -> list[str]:
        return _split(self.api_keys)

    @property
    def cors_origin_list(self) -> list[str]:
        return _split(self.cors_origins)

    @property
    def pinned_versions(self) -> dict[str, int]:
        """``model_versions`` parsed: model name -> version number."""
        pins = {}
        for item in _split(self.model_versions):
            name, _, version = item.partition("=")
            if not version.strip().isdigit():
                raise ValueError(f"STLSNN_MODEL_VERSIONS: expected name=version, got {item!r}")
            pins[name.strip()] = int(version)
        return pins


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]
