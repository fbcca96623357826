"""Time and peak memory of ReRoPE attention: reference (two n x n matrices) vs blockwise vs plain RoPE SDPA.

Run by ``make bench`` (not by the tests). Prefill, causal, fp32, window w = 512, batch 1, 4 heads, head_dim 128
(LLaMA-style heads; ``--heads``/``--head-dim`` change it). Forward only by default; ``--backward`` times
forward + backward of ``out.sum()`` (training) and writes ``*_backward.json``.

What is compared, on each device (CPU always, CUDA when present):

* ``sdpa``      plain RoPE attention: ``apply_rope`` on q and k, then
                ``torch.nn.functional.scaled_dot_product_attention``
                (is_causal=True) - the fused kernel ReRoPE is measured against (it cannot express ReRoPE itself).
* ``blockwise`` ``rope_lib.rerope_attention`` (ReRoPE), and ``leaky`` the same with leaky_k = 16.
* ``flex``      (CUDA only) ``rerope_attention(..., implementation="flex")``: ReRoPE on ``flex_attention``.
* ``reference`` ``rope_lib.rerope_attention_reference``: only up to ``--max-ref-len`` tokens (default 8192), where
                its ~6 score-sized n x n temporaries still fit comfortably in memory.

Time: best of ``--repeats`` rounds after one warm-up call (the median is stored too). Each round times every
(length, method) once, so a burst of load from other processes on a shared machine costs each case a sample
rather than all samples of one case; ratios are taken within the same run. The load average before and after is
stored: on an oversubscribed CPU the many small ops of the blockwise path stall far more than one fused SDPA call
(GNU OpenMP spin-waiting; ``OMP_WAIT_POLICY=passive`` helps), so numbers from a busy machine are not comparable.

Peak memory (CPU): every (method, length) runs once in a *fresh subprocess* (after a tiny warm-up call); the
number is the process's peak resident set size during that one call minus its resident size just before it (the
kernel's high-water mark VmHWM, reset through /proc/self/clear_refs). It counts every page the call touched -
temporaries, the output (n x head_dim, included for every method), allocator slack - which is what a machine has to
provide; it is not the allocator's bookkeeping. Small cases are dominated by allocator noise (~1 MiB).
Peak memory (CUDA): ``torch.cuda.max_memory_allocated`` during the call minus the memory allocated before it.

Writes results/bench/rerope_cpu.json (and rerope_cuda.json) with the torch version, device, thread count and
shapes, and prints a table. ``--tune`` instead times a few block sizes at one length (how BLOCK_Q/BLOCK_K in
rope_lib/rerope.py were chosen).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import rope_lib
from rope_lib import apply_rope, inv_freq, rerope_attention, rerope_attention_reference
from rope_lib.companion.runtime import repo_root

METHODS = ("sdpa", "blockwise", "leaky", "reference")
# On CUDA also ReRoPE on flex_attention (two or three block-masked calls merged by log-sum-exp; compiled there).
# Not on the CPU: eager flex materializes the scores, which is the reference's cost, not a kernel's.
CUDA_METHODS = ("sdpa", "flex", "blockwise", "leaky", "reference")


def methods_for(device: str) -> tuple[str, ...]:
    return CUDA_METHODS if device.startswith("cuda") else METHODS


WINDOW = 512
LEAK = 16.0


def make_inputs(n: int, heads: int, head_dim: int, device: str, seed: int = 0, grad: bool = False):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(1, heads, n, head_dim, generator=g).to(device).requires_grad_(grad) for _ in range(3))
    return q, k, v, inv_freq(head_dim)


def step(method: str, q, k, v, f, backward: bool = False, **blocks):
    """One forward (and, with backward=True, a backward of out.sum() as in training)."""
    out = call(method, q, k, v, f, **blocks)
    if backward:
        out.sum().backward()
    return out


def call(method: str, q, k, v, f, block_q=None, block_k=None):
    n = q.shape[-2]
    if method == "sdpa":
        pos = torch.arange(n, device=q.device)
        return F.scaled_dot_product_attention(apply_rope(q, pos, f), apply_rope(k, pos, f), v, is_causal=True)
    if method == "reference":
        return rerope_attention_reference(q, k, v, f, window=WINDOW)
    if method == "flex":
        return rerope_attention(q, k, v, f, window=WINDOW, implementation="flex")
    blocks = {} if block_q is None else {"block_q": block_q, "block_k": block_k}
    leak = LEAK if method == "leaky" else None
    return rerope_attention(q, k, v, f, window=WINDOW, leaky_k=leak, **blocks)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str) -> float:
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def _vm(field: str) -> float:
    """VmRSS / VmHWM of this process in MiB (Linux /proc)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def peak_rss_growth(fn) -> float:
    """Peak resident memory of this process during fn() minus its resident memory just before (MiB).

    Linux lets a process reset its own high-water mark (VmHWM) by writing 5 to /proc/self/clear_refs, so the peak
    is that of the call alone, not of import time. Elsewhere the lifetime peak (ru_maxrss) is used, which
    under-reports calls that stay below the import-time peak.
    """
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        before = _vm("VmRSS")
        out = fn()
        peak = _vm("VmHWM")
    except OSError:
        import resource

        unit = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * unit / 2**20
        out = fn()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * unit / 2**20
    del out
    return peak - before


def memory_cpu_subprocess(method: str, n: int, heads: int, head_dim: int, threads: int, backward: bool) -> float:
    """Peak-RSS growth (MiB) of one call in a fresh process (see the module docstring)."""
    code = (
        "import torch, sys; sys.path.insert(0, %r)\n"
        "import rerope_bench as b\n"
        "torch.set_num_threads(%d)\n"
        "q, k, v, f = b.make_inputs(%d, %d, %d, 'cpu', grad=%r)\n"
        "b.step(%r, q[..., :8, :], k[..., :8, :], v[..., :8, :], f, %r)\n"  # load kernels / thread pool first
        "print(b.peak_rss_growth(lambda: b.step(%r, q, k, v, f, %r)))\n"
    ) % (
        str(Path(__file__).resolve().parent),
        threads,
        n,
        heads,
        head_dim,
        backward,
        method,
        backward,
        method,
        backward,
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(res.stdout.strip().splitlines()[-1])


def memory_cuda(method: str, q, k, v, f, backward: bool) -> float:
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    out = step(method, q, k, v, f, backward)
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated()
    del out
    return (peak - base) / 2**20


def run_device(device: str, args) -> dict:
    load_before = os.getloadavg()
    cases = [(n, m) for n in args.lengths for m in methods_for(device) if m != "reference" or n <= args.max_ref_len]
    inputs = {n: make_inputs(n, args.heads, args.head_dim, device, grad=args.backward) for n in args.lengths}
    samples = {case: [] for case in cases}
    for n, m in cases:  # warm-up
        step(m, *inputs[n], args.backward)
    # Round-robin over every (length, method): a burst of load from another process then costs each case one
    # sample, not all samples of whichever case happened to be running; the best sample is reported.
    for _ in range(args.repeats):
        for n, m in cases:
            samples[(n, m)].append(timed(lambda: step(m, *inputs[n], args.backward), device))
    inputs.clear()  # free the large tensors before the memory measurements
    rows = []
    for n, m in cases:
        if device == "cpu":
            mem = memory_cpu_subprocess(m, n, args.heads, args.head_dim, args.threads, args.backward)
        else:
            q, k, v, f = make_inputs(n, args.heads, args.head_dim, device, grad=args.backward)
            mem = memory_cuda(m, q, k, v, f, args.backward)
            del q, k, v
        t = min(samples[(n, m)])
        row = {"n": n, "method": m, "time_s": t, "time_median_s": statistics.median(samples[(n, m)]), "peak_mib": mem}
        if m != "sdpa":
            row["time_vs_sdpa"] = t / min(samples[(n, "sdpa")])
        rows.append(row)
        print(
            f"{device:5s} n={n:6d} {m:10s} best {t:8.3f} s  median {row['time_median_s']:8.3f} s  {mem:9.1f} MiB"
            + (f"  x{row['time_vs_sdpa']:.2f} sdpa" if m != "sdpa" else ""),
            flush=True,
        )
    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": device if device == "cpu" else torch.cuda.get_device_name(),
        "cpu": cpu_model(),
        "threads": torch.get_num_threads(),
        "shape": {"batch": 1, "heads": args.heads, "head_dim": args.head_dim, "dtype": "float32"},
        "pass": "forward+backward" if args.backward else "forward",
        "window": WINDOW,
        "leaky_k": LEAK,
        "block_q": rope_lib.rerope.BLOCK_Q,
        "block_k": rope_lib.rerope.BLOCK_K,
        "repeats": args.repeats,
        "max_reference_len": args.max_ref_len,
        "load_average_1_5_15min": {"before": load_before, "after": os.getloadavg()},
        "memory_method": "peak RSS (VmHWM) minus RSS before the call, fresh subprocess per case"
        if device == "cpu"
        else "torch.cuda.max_memory_allocated minus allocated before the call",
        "rows": rows,
    }


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def print_table(result: dict) -> None:
    rows = result["rows"]
    ns = sorted({r["n"] for r in rows})
    print(
        f"\n{result['pass']}  {result['device']}  torch {result['torch']}  threads {result['threads']}"
        f"  shape {result['shape']}"
        f"  w={result['window']}  blocks {result['block_q']}x{result['block_k']}"
        f"  load avg before/after {result['load_average_1_5_15min']['before'][0]:.1f}/"
        f"{result['load_average_1_5_15min']['after'][0]:.1f}"
    )
    methods = [m for m in CUDA_METHODS if any(r["method"] == m for r in rows)]
    head = f"{'n':>6} | " + " | ".join(f"{m + ' s':>13} {'MiB':>8}" for m in methods) + " | blockwise/sdpa  leaky/sdpa"
    print(head)
    print("-" * len(head))
    for n in ns:
        by = {r["method"]: r for r in rows if r["n"] == n}
        cells = []
        for m in methods:
            r = by.get(m)
            cells.append(f"{r['time_s']:13.3f} {r['peak_mib']:8.1f}" if r else f"{'-':>13} {'-':>8}")
        ratio = f"{by['blockwise']['time_vs_sdpa']:14.2f}  {by['leaky']['time_vs_sdpa']:10.2f}"
        if "flex" in by:
            ratio += f"  flex/sdpa {by['flex']['time_vs_sdpa']:.2f}"
        print(f"{n:6d} | " + " | ".join(cells) + " | " + ratio)


def tune(args) -> None:
    device = "cpu"
    n = args.lengths[-1]
    q, k, v, f = make_inputs(n, args.heads, args.head_dim, device)
    sizes = [(64, 2048), (128, 1024), (128, 2048), (256, 512), (256, 1024), (256, 2048), (512, 512), (512, 1024)]
    best = {s: float("inf") for s in sizes}
    best["sdpa"] = float("inf")
    call("sdpa", q, k, v, f)
    for _ in range(args.repeats):
        best["sdpa"] = min(best["sdpa"], timed(lambda: call("sdpa", q, k, v, f), device))
        for s in sizes:
            best[s] = min(best[s], timed(lambda: call("blockwise", q, k, v, f, block_q=s[0], block_k=s[1]), device))
    for s in sizes:
        print(f"n={n} block_q={s[0]:4d} block_k={s[1]:5d}  {best[s]:.3f} s  x{best[s] / best['sdpa']:.2f} sdpa")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lengths", type=int, nargs="+", default=[1024, 2048, 4096, 8192, 16384])
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--head-dim", type=int, default=128)
    p.add_argument("--repeats", type=int, default=4, help="timed rounds over all cases (after one warm-up)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--max-ref-len", type=int, default=8192)
    p.add_argument("--devices", nargs="+", default=None, help="default: cpu, plus cuda when available")
    p.add_argument("--out", type=Path, default=repo_root() / "results" / "bench")
    p.add_argument("--tune", action="store_true", help="time block sizes at the last length instead")
    p.add_argument("--backward", action="store_true", help="time forward + backward (training) instead of forward")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.tune:
        tune(args)
        return
    devices = args.devices or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    args.out.mkdir(parents=True, exist_ok=True)
    for device in devices:
        result = run_device(device, args)
        suffix = "_backward" if args.backward else ""
        path = args.out / f"rerope_{'cpu' if device == 'cpu' else 'cuda'}{suffix}.json"
        path.write_text(json.dumps(result, indent=1) + "\n")
        print_table(result)
        print(f"wrote {path.relative_to(repo_root()) if path.is_relative_to(repo_root()) else path}")


if __name__ == "__main__":
    main()
