"""bench/profile_server.py charges each py-spy sample to the stage of its innermost named frame."""

from bench.profile_server import aggregate, per_thread, stage_of

LOOP = "Runner.run (asyncio/runners.py:118)"
LOG = "RequestLogMiddleware.__call__ (service/request_logging.py:95)"


def test_json_inside_the_access_log_is_logging_not_response_json():
    stack = [LOOP, LOG, "info (logging/__init__.py:1489)", "JsonFormatter.format (service/request_logging.py:40)"]
    assert stage_of([*stack, "dumps (json/__init__.py:231)"]) == "logging"


def test_the_forward_pass_under_the_batcher_is_model():
    stack = ["DynamicBatcher._run_batch (service/batcher.py:186)", "OnnxBackend.run (service/backends/onnx.py:50)"]
    assert stage_of([*stack, "InferenceSession.run (onnxruntime/capi/session.py:220)"]) == "model"


def test_frames_are_told_from_decoding_inside_prepare():
    prepare = "prepare (service/ingest.py:112)"
    assert stage_of([prepare, "_decode_for_model (service/ingest.py:125)", "load (events/load.py:80)"]) == "decode"
    assert stage_of([prepare, "frame_events (events/framing.py:60)"]) == "frame"


def test_uvloop_time_between_python_frames_is_event_loop_and_unknown_frames_are_other():
    assert stage_of(["<module> (service/__main__.py:98)", "run (uvicorn/main.py:632)", LOOP]) == "event loop (asyncio)"
    assert stage_of(["<module> (somewhere.py:1)", "mystery (elsewhere.py:2)"]) == "other"


def test_aggregate_sums_collapsed_stack_counts_per_stage():
    raw = (
        f"{LOOP};MultiPartParser.parse (starlette/formparsers.py:266) 7\n"
        f"{LOOP};ThreadPoolExecutor.submit (concurrent/futures/thread.py:172) 3\n"
        f"{LOOP};MultiPartParser.parse (starlette/formparsers.py:274) 2\n"
    )
    assert aggregate(raw) == {"multipart parsing": 9, "thread hops": 3}


def test_per_thread_cpu_is_the_growth_per_request_busiest_first_with_native_threads_summed():
    before = {1: 10.0, 2: 5.0, 3: 1.0, 4: 0.5}
    after = {4: 0.75, 2: 5.5, 1: 12.0, 3: 1.25, 5: 0.5}  # thread 5 started during the run
    names = {1: "MainThread", 2: "decode_0", 4: "batcher-demo"}
    assert per_thread(before, after, names, 1000) == (
        "MainThread 2.00, decode_0 0.50, batcher-demo 0.25, native threads (ONNX Runtime's) 0.75"
    )
