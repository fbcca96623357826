"""Cost of each rope_lib.hf route inside a transformers Llama, as a ratio to the same model unpatched.

Run by ``make bench`` (not by the tests). A seeded random ``LlamaForCausalLM`` (float32; hidden 128, 4 layers, 4 heads
of 32, vocab 256, trained length L = 512 by its config) is timed

* **prefill**: one forward over n = 512 ... 4096 tokens (batch 1, no cache) - scoring, perplexity, the prompt;
* **decode**: ``generate`` of 64 greedy tokens after a 256-token prompt with transformers' KV cache; the per-token
  cost is (time of 64 new tokens - time of 1) / 63, so the prompt's prefill cancels;

under every route ``apply`` chooses: the static frequency route (YaRN), log n on it, the raw-key routes (Dynamic NTK,
Dynamic YaRN: the keys rotated again at every length) and ReRoPE (window w = L/4). Every ratio is taken against the
unpatched model measured in the same rounds: each round times every (case, route) once, so load from other processes
costs each case a sample rather than one case all of them; best of ``--repeats`` rounds after a warm-up.

``--compile`` also checks which routes trace into one graph (``torch.compile(fullgraph=True, backend="eager")``: the
tracer only, no code generation) and records the first line of the error for those that do not.

Writes results/bench/hf_routes_cpu.json (and hf_routes_cuda.json when a GPU is present) with the versions, device,
thread count and shapes, and prints a table with the targets (rerope prefill <= 1.5x, dynamic decode <= 1.3x, the
static route 1.0x).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
from pathlib import Path

import torch
from rerope_bench import timed  # the same timer as the attention benchmark (benchmarks/)

from rope_lib import hf

L = 512
ROUTES: dict[str, dict] = {
    "plain": {},  # the unpatched model: the reference of every ratio
    "yarn": dict(rope_parameters={"rope_type": "yarn", "factor": 8.0}),
    "yarn + log n": dict(rope_parameters={"rope_type": "yarn", "factor": 8.0}, log_n=True),
    "dynamic": dict(rope_parameters={"rope_type": "dynamic", "factor": 1.0}),
    "dynamic_yarn": dict(rope_parameters={"rope_type": "dynamic_yarn"}),
    "rerope": dict(attention="rerope", window=L // 4),
}
# (case, route) -> the largest acceptable ratio (the targets)
TARGETS = {("prefill", "rerope"): 1.5, ("decode", "dynamic"): 1.3, ("decode", "dynamic_yarn"): 1.3}
STATIC_TOLERANCE = 1.05  # "the static route stays at 1.0x": within timing noise of the unpatched model
PROMPT, NEW = 256, 64


def build_model(device: str):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=256,
        hidden_size=128,
        intermediate_size=512,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=4,
        head_dim=32,
        max_position_embeddings=L,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=0,
    )
    model = LlamaForCausalLM(config).to(device).eval()
    model.generation_config.pad_token_id = 0
    return model


def patched(model, route: str):
    """A context in which ``model`` runs ``route`` (apply on enter, remove on exit)."""

    class _Ctx:
        def __enter__(self):
            if ROUTES[route]:
                hf.apply(model, **ROUTES[route])
            return model

        def __exit__(self, *exc):
            if ROUTES[route]:
                hf.remove(model)

    return _Ctx()


@torch.no_grad()
def prefill(model, x):
    return model(x, use_cache=False).logits


@torch.no_grad()
def generate(model, prompt, new: int):
    return model.generate(prompt, max_new_tokens=new, min_new_tokens=new, do_sample=False)


def run_device(device: str, args) -> dict:
    model = build_model(device)
    g = torch.Generator().manual_seed(1)
    inputs = {n: torch.randint(1, 256, (1, n), generator=g).to(device) for n in args.lengths}
    prompt = torch.randint(1, 256, (1, PROMPT), generator=g).to(device)
    cases = [("prefill", n) for n in args.lengths] + [("generate", NEW), ("generate", 1)]

    def one(case, route):
        kind, n = case
        with patched(model, route):
            if kind == "prefill":
                return timed(lambda: prefill(model, inputs[n]), device)
            return timed(lambda: generate(model, prompt, n), device)

    for route in ROUTES:  # warm-up: allocator, first-call paths, transformers' mask caches
        for case in cases:
            one(case, route)
    samples: dict[tuple, list[float]] = {(c, r): [] for c in cases for r in ROUTES}
    for i in range(args.repeats):
        for case in cases:
            for route in ROUTES:
                samples[(case, route)].append(one(case, route))
        print(f"  {device}: round {i + 1}/{args.repeats} done", file=sys.stderr)

    best = {key: min(v) for key, v in samples.items()}
    rows = []

    def per_token(route):
        return (best[(("generate", NEW), route)] - best[(("generate", 1), route)]) / (NEW - 1)

    for route in ROUTES:
        for n in args.lengths:
            case = ("prefill", n)
            rows.append(_row("prefill", f"n={n}", route, best[(case, route)], best[(case, "plain")]))
            rows[-1]["median_s"] = statistics.median(samples[(case, route)])
        rows.append(_row("decode", f"per token after {PROMPT}", route, per_token(route), per_token("plain")))
        case = ("generate", NEW)
        rows.append(_row("generate", f"{PROMPT}+{NEW}", route, best[(case, route)], best[(case, "plain")]))
    result = {
        "what": "rope_lib.hf routes in a random LlamaForCausalLM: seconds, and ratio to the unpatched model",
        "device": device if device == "cpu" else torch.cuda.get_device_name(),
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads() if device == "cpu" else None,
        "torch": torch.__version__,
        "transformers": __import__("transformers").__version__,
        "model": {"hidden": 128, "layers": 4, "heads": 4, "head_dim": 32, "vocab": 256, "L": L, "dtype": "float32"},
        "repeats": args.repeats,
        "load_average": os.getloadavg(),
        "rows": rows,
    }
    if args.compile:
        result["fullgraph"] = {route: compile_check(model, route, device) for route in ROUTES}
    return result


def _row(case: str, size: str, route: str, seconds: float, plain: float) -> dict:
    ratio = seconds / plain
    target = TARGETS.get((case, route))
    if case == "prefill" and route == "yarn":
        target = STATIC_TOLERANCE
    row = {"case": case, "size": size, "route": route, "best_s": seconds, "ratio": ratio}
    if target is not None:
        row.update(target=target, meets_target=ratio <= target)
    return row


def compile_check(model, route: str, device: str) -> str:
    """'ok' when the forward traces into one graph, else the first line of the tracer's error."""
    import torch._dynamo

    torch._dynamo.reset()
    x = torch.randint(1, 256, (1, 64), device=device)
    with patched(model, route):
        try:
            with torch.no_grad():
                torch.compile(model, fullgraph=True, backend="eager")(x, use_cache=False)
            return "ok"
        except Exception as err:  # the tracer's many error types: we record, not handle
            return f"{type(err).__name__}: {str(err).strip().splitlines()[0][:200]}"
        finally:
            torch._dynamo.reset()


def print_table(result: dict) -> None:
    print(f"\n{result['device']} (torch {result['torch']}, transformers {result['transformers']})")
    print(f"{'case':<9}{'size':<24}{'route':<14}{'seconds':>10}{'ratio':>8}  target")
    for r in result["rows"]:
        mark = "" if "target" not in r else f"<= {r['target']:.2f} {'ok' if r['meets_target'] else 'MISSED'}"
        print(f"{r['case']:<9}{r['size']:<24}{r['route']:<14}{r['best_s']:>10.4f}{r['ratio']:>8.2f}  {mark}")
    for route, outcome in result.get("fullgraph", {}).items():
        print(f"fullgraph {route:<14} {outcome}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lengths", type=int, nargs="+", default=[512, 1024, 2048, 4096])
    p.add_argument("--repeats", type=int, default=5, help="timed rounds over all cases (after one warm-up)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--devices", nargs="+", default=None, help="default: cpu, plus cuda when available")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "results" / "bench")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    devices = args.devices or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    args.out.mkdir(parents=True, exist_ok=True)
    for device in devices:
        result = run_device(device, args)
        path = args.out / f"hf_routes_{'cpu' if device == 'cpu' else 'cuda'}.json"
        path.write_text(json.dumps(result, indent=1) + "\n")
        print_table(result)
        print(f"wrote {path.name} in {args.out}")


if __name__ == "__main__":
    main()
