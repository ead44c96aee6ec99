"""Shared helpers of the benchmarks: machine facts, timing, the GEMM yardstick, peak memory.

Every benchmark measures *our* figure and the *baseline's* figure side by side in the
same run (interleaved where they are cheap), so that a machine shared with other jobs
slows both alike and the ratio stays fair.  The machine's state (load average and the
busiest other processes) is recorded with every result.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = Path(os.environ.get("MICROMOTION_BENCH_OUT", ROOT / "benchmark-output"))


# ---------------------------------------------------------------- machine
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def mem_info() -> dict[str, float]:
    """MemTotal / MemAvailable in GiB (Linux)."""
    out: dict[str, float] = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, val = line.split(":", 1)
            if key in ("MemTotal", "MemAvailable"):
                out[key] = int(val.split()[0]) / 2**20
    except OSError:
        pass
    return out


def busy_processes(limit: int = 4, min_cpu: float = 20.0) -> list[str]:
    """Other processes using a lot of CPU right now (``ps``), as 'pcpu% command' strings."""
    me = {os.getpid(), os.getppid()}
    try:
        text = subprocess.run(["ps", "-eo", "pid,pcpu,args", "--sort=-pcpu", "--no-headers"],
                              capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    out = []
    for line in text.splitlines():
        parts = line.split(None, 2)
        if len(parts) < 3 or int(parts[0]) in me or "ps -eo" in parts[2]:
            continue
        if float(parts[1]) >= min_cpu:
            out.append(f"{parts[1]}% {parts[2][:80]}")
        if len(out) >= limit:
            break
    return out


def machine_state() -> dict[str, Any]:
    """Load and competing processes now (call before and after a measurement)."""
    try:
        load = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        load = []
    return {"load_avg_1_5_15": load, "busy_processes": busy_processes(), **{k: round(v, 1) for k, v in mem_info().items()}}


def machine_info() -> dict[str, Any]:
    """Static facts: CPU, cores, memory, library versions."""
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for pkg in ("numpy", "scipy", "torch", "numba", "napari-micromotion"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    try:
        import torch

        threads = torch.get_num_threads()
    except ImportError:  # pragma: no cover
        threads = None
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "mem_total_gib": round(mem_info().get("MemTotal", 0), 1),
            "torch_threads": threads, "platform": platform.platform(), "versions": versions}


# ---------------------------------------------------------------- timing
def best_time(fn: Callable[[], Any], repeats: int = 3) -> float:
    """Shortest wall time of *repeats* calls (the least disturbed one)."""
    best = float("inf")
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def interleaved(fns: dict[str, Callable[[], Any]], rounds: int = 3) -> dict[str, float]:
    """Best time of each function, calling them in turn *rounds* times (fair under changing load)."""
    best = {k: float("inf") for k in fns}
    for _ in range(max(1, rounds)):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - t0)
    return best


def gemm_gflops(n: int = 2048, seconds: float = 0.5) -> Callable[[], None]:
    """A callable doing k fp32 ``n x n`` matmuls in torch (k so that it lasts about *seconds*,
    comparable with the timings it is set against); ``run.flops`` = 2 n^3 k."""
    import torch

    a = torch.randn(n, n)
    b = torch.randn(n, n)
    a @ b
    t0 = time.perf_counter()
    a @ b
    k = max(1, int(seconds / max(time.perf_counter() - t0, 1e-6)))

    def run() -> None:
        for _ in range(k):
            a @ b

    run.flops = 2.0 * n**3 * k  # type: ignore[attr-defined]
    return run


# ---------------------------------------------------------------- memory
class PeakMemory:
    """Sample this process's anonymous and file-backed resident memory in a thread.

    ``ru_maxrss`` (the kernel's high-water mark) counts pages of a memory-mapped input
    that were read as resident too; the split tells working memory (anonymous) from
    mapped input pages (file-backed, dropped by the kernel under pressure).
    """

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.peak_anon = 0
        self.peak_file = 0
        self.peak_total = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def now() -> tuple[int, int]:
        anon = file = 0
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("RssAnon:"):
                    anon = int(line.split()[1]) * 1024
                elif line.startswith("RssFile:") or line.startswith("RssShmem:"):
                    file += int(line.split()[1]) * 1024
        except OSError:
            pass
        return anon, file

    def _run(self) -> None:
        while not self._stop.is_set():
            anon, file = self.now()
            self.peak_anon = max(self.peak_anon, anon)
            self.peak_file = max(self.peak_file, file)
            self.peak_total = max(self.peak_total, anon + file)
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakMemory":
        self.start_anon, self.start_file = self.now()
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        anon, file = self.now()
        self.peak_anon = max(self.peak_anon, anon)
        self.peak_file = max(self.peak_file, file)
        self.peak_total = max(self.peak_total, anon + file)
        self.maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def as_dict(self) -> dict[str, float]:
        gib = 2**30
        return {"start_rss_gib": (self.start_anon + self.start_file) / gib, "peak_anon_gib": self.peak_anon / gib,
                "peak_file_gib": self.peak_file / gib, "peak_sampled_gib": self.peak_total / gib,
                "ru_maxrss_gib": self.maxrss / gib,
                # what the measured work added on top of the interpreter and its imports
                "peak_above_start_gib": (max(self.maxrss, self.peak_total) - self.start_anon - self.start_file) / gib}


def run_child(args: list[str], *, timeout: float, oom_first: bool = False,
              env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``python <args>`` in a fresh process; its last stdout line is JSON, returned as a dict.

    *oom_first*: make the child the first candidate of the kernel's out-of-memory killer,
    so that a memory-hungry baseline cannot take other jobs down with it.
    """
    def pre() -> None:
        if oom_first:
            try:
                Path("/proc/self/oom_score_adj").write_text("1000")
            except OSError:
                pass

    full_env = {**os.environ, **(env or {})}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout,
                          preexec_fn=pre if os.name == "posix" else None, env=full_env)
    wall = time.perf_counter() - t0
    lines = [ln for ln in proc.stdout.strip().splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"ok": False, "returncode": proc.returncode, "error": " | ".join(tail)[-400:], "child_wall_s": wall}
    out = json.loads(lines[-1])
    out.setdefault("ok", True)
    out["child_wall_s"] = wall
    return out


# ---------------------------------------------------------------- anchors in their own environments
def anchor_python(spec: str, module: str, env_var: str, default_dir: str, *, install_timeout: float = 3600
                  ) -> tuple[Path | None, str]:
    """The Python of a virtual environment holding the benchmark-only package *spec* (created on first use).

    *module* is what must import there; the environment is ``$<env_var>`` or
    ``benchmark-output/<default_dir>``.  Returns ``(python, how)``, or ``(None, why)`` with
    the last error lines of the failed step.
    """
    venv = Path(os.environ.get(env_var, OUT_DIR / default_dir))
    py = venv / "bin" / "python"
    if py.exists() and subprocess.run([str(py), "-c", f"import {module}"], capture_output=True).returncode == 0:
        return py, "installed"
    try:
        if not py.exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300)
        inst = subprocess.run([str(py), "-m", "pip", "install", "--quiet", spec], capture_output=True, text=True,
                              timeout=install_timeout)
    except (subprocess.SubprocessError, OSError) as exc:
        return None, f"could not install {spec}: {str(exc)[:200]}"
    if inst.returncode != 0:
        lines = [ln.strip() for ln in (inst.stderr + inst.stdout).splitlines()
                 if "Error" in ln or "error:" in ln or "Failed" in ln]
        return None, f"could not install {spec}: {' | '.join(lines[-4:])[-600:]}"
    return py, "installed now"


# ---------------------------------------------------------------- reporting
def report(name: str, *, goal: str, ours: float, baseline: float, ratio: float, unit: str, baseline_label: str,
           met: bool | None, details: dict[str, Any], quick: bool, state_before: dict[str, Any],
           ratio_label: str = "ratio") -> dict[str, Any]:
    """Print the three figures and write ``benchmark-output/<name>[-quick].json``."""
    res = {
        "name": name, "goal": goal, "quick": quick, "unit": unit,
        "ours": ours, "baseline": baseline, "baseline_label": baseline_label, "ratio": ratio,
        "ratio_label": ratio_label, "goal_met": met, "details": details,
        "machine": machine_info(), "state_before": state_before, "state_after": machine_state(),
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    print(f"== {name}{' (quick)' if quick else ''}: {goal}")
    print(f"ours:     {ours:.4g} {unit}")
    print(f"baseline: {baseline:.4g} {unit}  ({baseline_label})")
    print(f"{ratio_label}: {ratio:.3g}" + ("" if met is None else f"  -> goal {'MET' if met else 'NOT met'}"))
    for k, v in details.items():
        print(f"  {k}: {v}")
    print(f"  load before/after: {state_before.get('load_avg_1_5_15')} / {res['state_after'].get('load_avg_1_5_15')}")
    if state_before.get("busy_processes"):
        print(f"  other busy processes: {state_before['busy_processes']}")
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / f"{name}{'-quick' if quick else ''}.json"
    path.write_text(json.dumps(res, indent=1, default=float) + "\n")
    print(f"  written: {path}")
    return res
