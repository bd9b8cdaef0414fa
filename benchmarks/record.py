"""Where every benchmark writes its numbers: benchmarks/results/<benchmark>-<device>.json.

One record per (benchmark, device kind): benchmark, device ("cpu" or
"cuda"), device_name (the CPU model or the GPU name), ours, peer, ratio
(peer / ours for times, ours / peer for throughputs, so > 1 always means
ours is better; None without a peer), unit, command (the command line that
produced it), provenance (`core.io.provenance()`), plus benchmark-specific
details under "details".
"""
from __future__ import annotations

import platform
import shlex
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.io import atomic_write_json, provenance  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
LOWER_IS_BETTER = ("s", "seconds")


def device_name(device: torch.device | str) -> str:
    """The GPU's name, or the CPU model (from /proc/cpuinfo where there is one)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def describe(device: torch.device | str) -> str:
    """'cpu (NAME, T threads)' or 'cuda:0 (NAME)', for the benchmark's first line."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"{device} ({device_name(device)})"
    return f"cpu ({device_name(device)}, {torch.get_num_threads()} threads)"


def ratio(ours: float, peer: float | None, unit: str) -> float | None:
    if peer is None or not ours or not peer:
        return None
    return peer / ours if unit in LOWER_IS_BETTER else ours / peer


def path_for(benchmark: str, device: torch.device | str) -> Path:
    return RESULTS / f"{benchmark}-{torch.device(device).type}.json"


def write(benchmark: str, device: torch.device | str, ours: float, peer: float | None,
          unit: str, details: dict | None = None, argv: list[str] | None = None,
          path: str | Path | None = None) -> Path:
    """Write the record (atomically) and return its path."""
    device = torch.device(device)
    argv = sys.argv if argv is None else argv
    record = {"benchmark": benchmark, "device": device.type, "device_name": device_name(device),
              "ours": ours, "peer": peer, "ratio": ratio(ours, peer, unit), "unit": unit,
              "command": " ".join(shlex.quote(a) for a in ["python", *argv]),
              "provenance": provenance(), "details": details or {}}
    out = Path(path) if path is not None else path_for(benchmark, device)
    atomic_write_json(out, record)
    return out
