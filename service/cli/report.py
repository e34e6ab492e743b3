"""How ``stlsnn classify`` prints its results: a table for people, JSON, JSON lines or CSV for programs.

Every format has one entry per file in the order the files were found, failures included with
the server's problem ``detail`` (or the transport error) as the reason, so a pipeline can see
which file failed and why without reading stderr.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from service.cli.terminal import RED, colour

CSV_COLUMNS = ("file", "label", "index", "score", "events", "duration_us", "total_ms", "status", "error")


@dataclass
class Outcome:
    """One file's answer: the classify response, or the failure's status (None: never reached the server) and reason."""

    path: Path
    result: dict | None = None
    status: int | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.result is not None

    def as_dict(self) -> dict:
        if self.ok:
            return {"file": str(self.path), "ok": True, "result": self.result}
        return {"file": str(self.path), "ok": False, "status": self.status, "error": self.error}

    def row(self) -> dict[str, str]:
        """The flat fields of the CSV and the table."""
        if not self.ok:
            return {"file": str(self.path), "status": str(self.status or ""), "error": self.error}
        prediction, recording = self.result["prediction"], self.result.get("input", {})
        return {
            "file": str(self.path),
            "label": str(prediction["label"]),
            "index": str(prediction["index"]),
            "score": f"{prediction['score']:.3f}",
            "events": str(recording.get("events", "")),
            "duration_us": str(recording.get("duration_us", "")),
            "total_ms": f"{self.result.get('timing_ms', {}).get('total', 0.0):.1f}",
            "status": "200",
            "error": "",
        }


def write_jsonl_line(outcome: Outcome, out: TextIO) -> None:
    out.write(json.dumps(outcome.as_dict()) + "\n")
    out.flush()


def write_json(outcomes: list[Outcome], out: TextIO) -> None:
    json.dump([o.as_dict() for o in outcomes], out, indent=2)
    out.write("\n")


def write_csv(outcomes: list[Outcome], out: TextIO) -> None:
    writer = csv.DictWriter(out, CSV_COLUMNS, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(o.row() for o in outcomes)


def write_table(outcomes: list[Outcome], out: TextIO) -> None:
    """Aligned columns: file, label, score, events, duration, latency; a failed file shows its reason."""
    header = ("FILE", "LABEL", "SCORE", "EVENTS", "DURATION", "MS")
    rows = []
    for outcome in outcomes:
        row = outcome.row()
        if outcome.ok:
            duration = f"{int(row['duration_us']) / 1e6:.3f} s" if row["duration_us"] else ""
            rows.append((row["file"], row["label"], row["score"], row["events"], duration, row["total_ms"]))
        else:
            rows.append((row["file"], f"FAILED {row['status']}".strip(), outcome.error))
    widths = [max(len(r[i]) for r in [header, *rows] if len(r) == len(header)) for i in range(len(header))]
    widths[0] = max(len(r[0]) for r in [header, *rows])
    out.write(_line(header, widths) + "\n")
    for row in rows:
        if len(row) == len(header):
            out.write(_line(row, widths) + "\n")
        else:
            failed = colour(row[1], RED, out)
            out.write(f"{row[0]:<{widths[0]}}  {failed}  {row[2]}\n")


def _line(cells: tuple[str, ...], widths: list[int]) -> str:
    text = [f"{cells[0]:<{widths[0]}}", f"{cells[1]:<{widths[1]}}"]
    text += [f"{cell:>{width}}" for cell, width in zip(cells[2:], widths[2:], strict=True)]
    return "  ".join(text).rstrip()
