"""In-process checks of what no real request should reach: the catch-all 500, and the profile data files."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from fastapi.testclient import TestClient

from export.manifest import Manifest
from service.app import create_app
from service.energy import PROFILES_DIR, estimate, load_profiles
from service.settings import Settings


def test_an_unexpected_error_is_a_generic_500_problem_and_the_trace_is_logged(tmp_path, caplog):
    app = create_app(Settings(model_repository=tmp_path))

    @app.get("/boom")
    async def boom():
        raise RuntimeError(f"secret detail in {tmp_path}")

    with caplog.at_level(logging.ERROR), TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/boom", headers={"X-Request-ID": "rid-500"})
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["x-request-id"] == "rid-500"
    body = response.json()
    assert body["status"] == 500 and body["title"] == "Internal Server Error" and body["request_id"] == "rid-500"
    assert "secret" not in response.text and str(tmp_path) not in response.text and "Traceback" not in response.text
    assert any(record.exc_info and "secret detail" in str(record.exc_info[1]) for record in caplog.records)


def test_profiles_are_data_and_the_default_is_horowitz_45nm_fp32():
    profiles = load_profiles()
    assert {p.stem for p in PROFILES_DIR.glob("*.json")} == set(profiles)
    fp32 = profiles["45nm-fp32"]
    assert (fp32.e_ac_pj, fp32.e_mac_pj) == (0.9, 4.6) and "Horowitz" in fp32.source
    assert (profiles["45nm-int8"].e_ac_pj, profiles["45nm-fp16"].e_mac_pj) == (0.03, 1.5)
    for profile in profiles.values():
        assert profile.e_ac_pj < profile.e_mac_pj and profile.nonbinary_input in ("ac", "mac")
        assert any("memory" in line for line in profile.assumptions)


def test_a_silent_network_has_no_ratio():
    manifest = Manifest.from_dict(
        {
            "name": "m",
            "version": 1,
            "classes": ["a"],
            "time_steps": 2,
            "input": {"width": 4, "height": 4, "sensor_width": 4, "sensor_height": 4},
            "layers": {
                "lif": [{"name": "lif1", "neurons": 3, "shape": [3]}],
                "synaptic": [
                    {"name": "fc1", "kind": "linear", "fan_in": 32, "fan_out": 3, "macs": 96, "binary_input": False}
                ],
            },
        }
    )
    energy = estimate(manifest, np.array([0]), load_profiles()["45nm-fp32"])
    assert energy["snn_pj"] == 0 and energy["ratio"] is None
    assert energy["ann_pj"] == pytest.approx(4.6 * 96)
    mac = estimate(manifest, np.array([0]), load_profiles()["45nm-fp32-mac-input"])
    assert mac["snn_pj"] == pytest.approx(4.6 * 96 * 2)
