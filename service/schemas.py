"""Response bodies (DESIGN.md section 6) as pydantic models, so ``/openapi.json`` documents them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from service.problems import PROBLEM_MEDIA_TYPE


class ProblemDetails(BaseModel):
    """RFC 9457 problem details; ``errors`` lists the invalid parameters of a 422."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(examples=["urn:stlsnn:problem:undecodable-file"])
    title: str
    status: int
    detail: str
    request_id: str | None = None


class Health(BaseModel):
    status: str = Field(examples=["ok"])


class Readiness(BaseModel):
    status: str = Field(examples=["ready"])
    models: dict[str, str] = Field(description="model name -> loading | ready | failed")


class ModelSummary(BaseModel):
    name: str
    version: int | None
    state: str = Field(description="loading | ready | failed")
    error: str | None = Field(None, description="why a failed model cannot serve")
    classes: list[str] | None = None
    time_steps: int | None = None
    input_encoding: str | None = None
    backend: str | None = Field(None, description="onnx | torchscript")
    device: str | None = Field(None, description="cpu | cuda")
    provider: str | None = Field(None, description="execution provider actually in use")
    max_batch_size: int | None = None
    queue_depth: int | None = None
    load_ms: float | None = None


class ModelList(BaseModel):
    default: str | None = Field(description="the model /v1/classify uses")
    models: list[ModelSummary]


class ModelDetail(ModelSummary):
    manifest: dict | None = Field(None, description="the model's manifest.json")


class ModelRef(BaseModel):
    name: str
    version: int


class ClassScore(BaseModel):
    index: int
    label: str
    score: float = Field(description="firing rate of the class's voting population, averaged over time")


class InputFrames(BaseModel):
    """The frames the model saw (``include=frames``): event counts per pixel, channel 0 OFF, 1 ON."""

    shape: list[int] = Field(description="[T, 2, h, w]")
    dtype: str = Field(description="always uint16; counts above 65535 saturate at 65535")
    data: str = Field(description="base64 of the counts as little-endian uint16, C order")


class NoiseRemoved(BaseModel):
    hot_pixels: int = Field(description="events of hot pixels dropped")
    background_activity: int = Field(description="events the background-activity filter dropped")


class NoiseInfo(BaseModel):
    """The noise filters applied before framing (the model's, or the request's overrides)."""

    denoise_us: int = Field(description="background-activity window in microseconds; 0 = off")
    hot_pixels: bool = Field(description="whether hot pixels were dropped")
    hot_pixels_found: int
    removed: NoiseRemoved


class InputInfo(BaseModel):
    filename: str | None
    format: str
    events: int
    duration_us: int
    sensor_size: list[int] = Field(description="[width, height] used for framing")
    sensor_from_header: bool
    time_steps: int
    frames: InputFrames | None = Field(None, description="only with include=frames")
    noise: NoiseInfo


class LayerSpikes(BaseModel):
    name: str
    neurons: int
    count: int
    rate: float = Field(description="count / (neurons * time_steps)")
    steps: list[int] | None = Field(
        None,
        description="spikes of this layer at each time step (models exported with per-step outputs; "
        "null for older exports)",
    )


class Spikes(BaseModel):
    total: int
    layers: list[LayerSpikes]


class EnergyLayer(BaseModel):
    name: str
    kind: str
    sops: int
    dense_macs: int = Field(description="MACs of one dense pass (one time step)")
    binary_input: bool
    charged_as: str = Field(description="ac (per SOP) | mac (dense MACs every time step)")
    pj: float


class Energy(BaseModel):
    profile: str
    e_ac_pj: float
    e_mac_pj: float
    sops: int = Field(description="synaptic operations of the request, all layers and time steps")
    dense_macs: int = Field(description="MACs of one pass of the same architecture as an ANN")
    snn_pj: float
    ann_pj: float
    ratio: float | None = Field(description="ann_pj / snn_pj (null when the SNN did no operation)")
    layers: list[EnergyLayer]
    assumptions: list[str]
    source: str
    measured_gpu_j: float | None = Field(description="this sample's share of its batch's GPU energy (NVML)")
    measured_gpu: str = Field(description="how measured_gpu_j was obtained, or why it is unavailable")
    snn_pj_decided: float | None = Field(
        None,
        description="with early_exit: SNN energy of the first decision.step time steps (null for a profile that "
        "charges a non-binary-input layer as MACs, which needs per-layer steps)",
    )


class EarlyDecision(BaseModel):
    step: int = Field(description="first time step (1..T) whose running top-1 minus top-2 score reached the margin")
    margin: float = Field(description="top-1 minus top-2 of the running mean score at that step")
    reached: bool = Field(description="false when no step reached the margin (step is then T)")
    index: int = Field(description="the top class after that step")
    label: str


class Timing(BaseModel):
    decode: float
    frame: float
    queue: float
    infer: float
    total: float


class ClassifyResponse(BaseModel):
    model: ModelRef
    prediction: ClassScore
    top_k: list[ClassScore]
    input: InputInfo
    spikes: Spikes
    energy: Energy
    decision: EarlyDecision | None = Field(None, description="with early_exit only")
    timing_ms: Timing


class TimelineInput(BaseModel):
    filename: str | None = None
    format: str
    events: int
    duration_us: int
    sensor_size: list[int]
    sensor_from_header: bool
    time_steps: int
    window_us: int
    stride_us: int
    min_events: int = Field(description="fewer events (before or after the noise filters) make a window idle")
    noise: dict = Field(description="the noise filters applied to each window on its own: denoise_us, hot_pixels")


class WindowDecision(BaseModel):
    step: int
    margin: float


class TimelineWindow(BaseModel):
    start_us: int
    end_us: int = Field(description="exclusive")
    events: int
    state: Literal["classified", "idle"]
    prediction: ClassScore | None
    spikes_total: int
    sops: int
    snn_pj: float
    decision: WindowDecision | None = Field(None, description="with early_exit, for classified windows")
    snn_pj_decided: float | None = Field(None, description="with early_exit: energy of the steps up to the decision")


class Segment(BaseModel):
    start_us: int
    end_us: int
    label: str
    score: float = Field(description="mean top score of its windows")
    windows: int


class TimelineEnergy(BaseModel):
    profile: str
    sops: int
    snn_pj: float
    ann_pj: float = Field(description="one dense ANN pass per classified window")
    ratio: float | None
    classified_windows: int
    snn_pj_decided: float | None = None


class TimelineResponse(BaseModel):
    model: ModelRef
    input: TimelineInput
    windows: list[TimelineWindow]
    segments: list[Segment]
    energy: TimelineEnergy
    timing_ms: Timing


class ClassifyBatchResponse(BaseModel):
    """The answer to a request carrying several ``files``: one result per file, in order."""

    results: list[ClassifyResponse]


class ExampleSummary(BaseModel):
    name: str
    format: str = Field(description="the decoder its content matches")
    size: int = Field(description="bytes")
    label: str = Field(description="the gesture its file name starts with")


class ExampleList(BaseModel):
    examples: list[ExampleSummary]


def problem_responses(*statuses: int) -> dict:
    """``responses=`` for a route: each status documented as problem+json."""
    schema = {"$ref": "#/components/schemas/ProblemDetails"}
    descriptions = {
        400: "Undecodable or inconsistent file",
        401: "Missing or wrong API key",
        404: "Unknown model or example",
        413: "Upload, file count, event count or duration over the limit",
        415: "Unknown format, or a model that takes no event files",
        422: "Invalid parameters",
        503: "Not ready, model unavailable or overloaded (see Retry-After)",
    }
    return {
        status: {"description": descriptions[status], "content": {PROBLEM_MEDIA_TYPE: {"schema": schema}}}
        for status in statuses
    }
