"""The timeline answer (DESIGN.md section 10): per-window results, merged segments and energy totals.

A segment is a run of consecutive classified windows with the same top label; an idle window
ends a run. Its score is the mean of its windows' top scores. The ANN comparison charges one
dense pass per classified window, as a conventional network classifying the same windows would.
Shared by the HTTP timeline and the WebSocket stream, which sends the same window objects.
"""

from __future__ import annotations

import numpy as np

from export.manifest import Manifest
from service.batcher import SampleResult
from service.early_decision import decide, decided_energy_pj
from service.energy import EnergyProfile, estimate


def window_report(
    manifest: Manifest,
    start_us: int,
    end_us: int,
    events: int,
    sample: SampleResult | None,
    profile: EnergyProfile,
    early_exit: float | None,
) -> dict:
    """One window: ``idle`` when ``sample`` is None, else its prediction, spikes, SOPs and energy."""
    report = {"start_us": int(start_us), "end_us": int(end_us), "events": int(events)}
    if sample is None:
        return report | {"state": "idle", "prediction": None, "spikes_total": 0, "sops": 0, "snn_pj": 0.0}
    scores = np.asarray(sample.scores, dtype=np.float64)
    top = int(np.argmax(scores))
    sops = np.rint(sample.sops).astype(np.int64)
    report |= {
        "state": "classified",
        "prediction": {"index": top, "label": manifest.classes[top], "score": float(scores[top])},
        "spikes_total": int(np.rint(sample.spikes).astype(np.int64).sum()),
        "sops": int(sops.sum()),
        "snn_pj": estimate(manifest, sops, profile)["snn_pj"],
    }
    if early_exit is not None:
        decision = decide(sample.step_scores, early_exit)
        report["decision"] = {"step": decision.step, "margin": decision.margin}
        report["snn_pj_decided"] = decided_energy_pj(manifest, sample.step_sops, decision.step, profile)
    else:
        report["decision"] = None
    return report


def merge_segments(windows: list[dict]) -> list[dict]:
    """Runs of consecutive classified windows with the same label, in order."""
    segments: list[dict] = []
    run: list[dict] = []

    def close() -> None:
        if run:
            scores = [w["prediction"]["score"] for w in run]
            segments.append(
                {
                    "start_us": run[0]["start_us"],
                    "end_us": run[-1]["end_us"],
                    "label": run[0]["prediction"]["label"],
                    "score": float(np.mean(scores)),
                    "windows": len(run),
                }
            )
            run.clear()

    for window in windows:
        if window["state"] != "classified" or (run and run[-1]["prediction"]["label"] != window["prediction"]["label"]):
            close()
        if window["state"] == "classified":
            run.append(window)
    close()
    return segments


def timeline_energy(manifest: Manifest, windows: list[dict], profile: EnergyProfile) -> dict:
    """Totals over every window against the same network run as an ANN once per classified window."""
    classified = [w for w in windows if w["state"] == "classified"]
    snn_pj = float(sum(w["snn_pj"] for w in classified))
    ann_pj = profile.e_mac_pj * manifest.dense_macs * len(classified)
    energy = {
        "profile": profile.name,
        "sops": int(sum(w["sops"] for w in classified)),
        "snn_pj": snn_pj,
        "ann_pj": ann_pj,
        "ratio": ann_pj / snn_pj if snn_pj > 0 else None,
        "classified_windows": len(classified),
    }
    decided = [w.get("snn_pj_decided") for w in classified if w.get("decision") is not None]
    if decided and all(pj is not None for pj in decided):
        energy["snn_pj_decided"] = float(sum(decided))
    return energy
