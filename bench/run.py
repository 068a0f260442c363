"""Benchmarks ironsafe against the reference safetensors (and torch.save /
torch.load, and fastsafetensors where it runs), in one run.

    python bench/run.py [--size 2GB] [--samples 5] [--dir target/bench]
                        [--only SCENARIO,...] [--out bench/results]
                        [--gpu-only] [--gpu-size 8GB]

Scenarios: save, warm, owned, cold, tiny, tp, header, gpu (see
scenarios.py). The input files are made in --dir when missing. Every sample
runs in a fresh process (worker.py); the implementations of a scenario
alternate, sample after sample, every other round in reverse order. The
report goes to --out as latest.md (also printed), latest.json and
latest.png.

This is a benchmark, not a test: it fails only when it cannot run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from typing import Any, Dict, List

import inputs
import pagecache
import report
import scenarios
from scenarios import Config, InputFile, Scenario

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "worker.py")
WORKER_TIMEOUT_S = 1800


def parse_args(argv: List[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="2GB", help="size of the LLM-shaped file (default 2GB)")
    parser.add_argument("--samples", type=int, default=5, help="samples per implementation (default 5)")
    parser.add_argument("--dir", default="target/bench", help="where the input files go (default target/bench)")
    parser.add_argument("--only", default=",".join(scenarios.NAMES),
                        help=f"comma-separated scenarios (default all: {','.join(scenarios.NAMES)})")  # fmt: skip
    parser.add_argument("--out", default="bench/results", help="where the report goes (default bench/results)")
    parser.add_argument("--gpu-only", action="store_true", help="run the GPU scenario alone (same as --only gpu)")
    parser.add_argument("--gpu-size", default="8GB", help="size of the GPU scenario's file (default 8GB)")
    args = parser.parse_args(argv)
    args.only = ["gpu"] if args.gpu_only else [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(args.only) - set(scenarios.NAMES))
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(scenarios.NAMES)}")
    if args.samples < 1:
        parser.error("--samples must be at least 1")
    args.size, args.gpu_size = inputs.parse_size(args.size), inputs.parse_size(args.gpu_size)
    return args


def worker(job: Dict[str, Any]) -> Dict[str, Any]:
    """Runs ``job`` in a fresh worker process; its JSON answer, with
    ``error`` None, or ``error`` set to what went wrong."""
    try:
        done = subprocess.run([sys.executable, WORKER, json.dumps(job)], capture_output=True, text=True,
                              timeout=WORKER_TIMEOUT_S, check=False)  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {WORKER_TIMEOUT_S} s"}
    if done.returncode != 0:
        return {"error": (done.stderr.strip() or f"exit status {done.returncode}")[-2000:]}
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "error": None}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def make_files(selected: List[Scenario]) -> None:
    """Makes each input file the selected scenarios read, unless it exists."""
    wanted: Dict[str, InputFile] = {}
    for scenario in selected:
        for file in scenario.files:
            known = wanted.get(file.path)
            wanted[file.path] = file if known is None or file.torch_path else known
    for file in wanted.values():
        if os.path.exists(file.path) and (file.torch_path is None or os.path.exists(file.torch_path)):
            continue
        log(f"making {file.path}" + (f" and {file.torch_path}" if file.torch_path else ""))
        answer = worker({"op": "make", "layout": file.layout, "path": file.path, "torch_path": file.torch_path})
        if answer["error"]:
            raise SystemExit(f"could not make {file.path}:\n{answer['error']}")


def sample(scenario: Scenario, samples: int) -> Dict[str, List[Dict[str, Any]]]:
    """Runs every measurement of ``scenario`` ``samples`` times, the
    measurements in turn within each round, every other round in reverse
    order (A B, B A, A B, ...). A sample is affected by the one before it
    (memory it freed, pages it left in the cache or evicted), so neither
    implementation always follows the other."""
    results: Dict[str, List[Dict[str, Any]]] = {key: [] for key in scenario.jobs}
    for round_ in range(samples):
        order = list(scenario.jobs.items())
        if round_ % 2:
            order.reverse()
        for key, job in order:
            answer = worker({"op": "measure", **job})
            results[key].append(answer)
            outcome = f"{answer['seconds']:.4f} s" if answer["error"] is None else "ERROR"
            log(f"[{scenario.name}] {round_ + 1}/{samples} {job['name']}: {outcome}")
            if answer["error"] is not None:
                log(answer["error"])
    return results


def reread_warm_files(scenario: Scenario) -> None:
    """Evicts each file that the scenario's warm measurements load and reads
    it back in one sequential pass. How a file's pages came into the page
    cache sets how many pages a fault of a map takes (after two threads read
    it in interleaved chunks, a touch of the 2 GB file faulted 28 times as
    often and took 10 times as long), so a file left by an earlier scenario
    or run would carry that history into this one, on both sides alike."""
    for path in sorted({job["path"] for job in scenario.jobs.values() if job.get("cache") == "warm"}):
        pagecache.make_cold(path)
        pagecache.warm(path)


def run_scenario(scenario: Scenario, samples: int) -> Dict[str, Any]:
    """Samples ``scenario`` and summarizes it: its rows and baselines."""
    reread_warm_files(scenario)
    raw = sample(scenario, samples)
    measured = {key: report.summarize(job, raw[key]) for key, job in scenario.jobs.items()}
    return {
        "rows": [report.summarize_row(scenario, row, measured) for row in scenario.rows],
        "baselines": [measured[key] for key in scenario.baselines],
        "raw": {"jobs": scenario.jobs, "samples": raw},
    }


def main(argv: List[str]) -> int:
    args = parse_args(argv)
    os.makedirs(args.dir, exist_ok=True)
    versions = worker({"op": "probe"})
    if versions.pop("error"):
        raise SystemExit("the environment lacks what the benchmark needs (torch, numpy, safetensors, ironsafe)")
    config = Config(args.dir, args.size, args.gpu_size, gpu=versions["gpu"] is not None,
                    fastsafetensors=versions["fastsafetensors"] is not None,
                    durable=versions["ironsafe_durable"])  # fmt: skip
    result: Dict[str, Any] = {
        "machine": report.machine(args.dir, versions),
        "config": {"size": args.size, "gpu_size": args.gpu_size, "samples": args.samples, "dir": args.dir,
                   "scenarios": args.only},  # fmt: skip
        "rows": [],
        "baselines": [],
        "notes": [],
        "raw": {},
    }
    if not versions["peak_reset"]:
        result["notes"].append("the peak RSS could not be reset: peak extra memory may include the set-up")
    selected = []
    for name in args.only:
        reason = scenarios.skip_reason(name, config)
        if reason is not None:
            print(f"{name}: {reason}")
            result["notes"].append(f"{name}: {reason}")
            continue
        scenario = scenarios.BUILDERS[name](config)
        result["notes"] += [f"{name}: {line}" for line in scenario.skipped]
        selected.append(scenario)
    make_files(selected)
    for scenario in selected:
        done = run_scenario(scenario, args.samples)
        result["rows"] += done["rows"]
        result["baselines"] += done["baselines"]
        result["raw"][scenario.name] = done["raw"]
    result["machine"]["load_average_end"] = round(os.getloadavg()[0], 2)
    if not selected:
        print("nothing was measured: no report written")
        return 0
    print(report.write(result, args.out))
    print(f"written: {', '.join(os.path.join(args.out, 'latest.' + ext) for ext in ('md', 'json', 'png'))}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
