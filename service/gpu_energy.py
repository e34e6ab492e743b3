"""Measured GPU energy through NVML, where ``pynvml`` (nvidia-ml-py) and a GPU are present.

The reading is the board's cumulative energy counter (millijoules since driver load), so a
batch's energy is the difference around its forward pass; it includes whatever else ran on
the GPU meanwhile and the board's idle draw.
"""

from __future__ import annotations

import logging

log = logging.getLogger("stlsnn.service")


class GpuEnergyMeter:
    """``read_joules()`` returns the cumulative counter in joules; ``available``/``reason`` say why not."""

    def __init__(self, device_index: int = 0):
        self.available = False
        self.reason = ""
        self._handle = None
        try:
            import pynvml
        except ImportError:
            self.reason = "nvidia-ml-py (pynvml) is not installed"
            return
        try:
            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(device_index)
            pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
        except Exception as exc:  # no driver, no GPU, or a board without an energy counter
            self.reason = f"NVML found no usable GPU ({type(exc).__name__})"
            log.info("gpu energy not measured: %s", exc)
            return
        self._nvml = pynvml
        self._handle = handle
        self.available = True

    def read_joules(self) -> float | None:
        if not self.available:
            return None
        try:
            return self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle) / 1000.0
        except Exception:
            return None
