"""Summaries of the samples, and the report: a markdown table, JSON and a
PNG chart, each naming the machine the run was made on."""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import subprocess
from typing import Any, Dict, List, Optional

from scenarios import Row, Scenario


# --- the machine ------------------------------------------------------------------


def _first(path: str, prefix: str) -> Optional[str]:
    """The value of the first ``prefix: value`` line of ``path``."""
    try:
        with open(path) as file:
            for line in file:
                if line.startswith(prefix):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _filesystem(directory: str) -> str:
    """``type (device) at mount point`` of the file system holding ``directory``."""
    path = os.path.realpath(directory)
    best = ("", "?", "?")
    with open("/proc/self/mounts") as mounts:
        for line in mounts:
            device, mount, kind = line.split()[:3]
            inside = path == mount or path.startswith(mount.rstrip("/") + "/")
            if inside and len(mount) >= len(best[0]):
                best = (mount, kind, device)
    return f"{best[1]} ({best[2]}) at {best[0]}"


def _checkout() -> str:
    """The commit of this checkout, and whether it has uncommitted changes
    (other than earlier results, which a run replaces)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        commit = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()  # fmt: skip
        status = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no", "--",
                                 ".", ":!bench/results"], capture_output=True, text=True, check=True).stdout  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + (" with uncommitted changes" if status.strip() else "")


def _read(path: str) -> str:
    with open(path) as file:
        return file.read().strip()


def _proactive_reclaim() -> Optional[str]:
    """A running DAMON scheme that pages out idle memory, if any: it takes
    cached file pages back after a while, and costs fresh memory faults."""
    root = "/sys/kernel/mm/damon/admin/kdamonds"
    try:
        for kdamond in filter(str.isdigit, os.listdir(root)):
            if _read(f"{root}/{kdamond}/state") != "on":
                continue
            context = f"{root}/{kdamond}/contexts/0"
            for scheme in filter(str.isdigit, os.listdir(f"{context}/schemes")):
                if _read(f"{context}/schemes/{scheme}/action") == "pageout":
                    age = int(_read(f"{context}/schemes/{scheme}/access_pattern/age/min"))
                    interval = int(_read(f"{context}/monitoring_attrs/intervals/aggr_us"))
                    return f"DAMON pages out memory idle for {age * interval / 1e6:g} s"
    except (OSError, ValueError):
        pass
    return None


def machine(directory: str, versions: Dict[str, Any]) -> Dict[str, Any]:
    """What the run ran on: CPU, cores, RAM, kernel, the bench directory's
    file system, the versions of Python and the libraries (and the commit
    of this checkout), and the date."""
    memory = _first("/proc/meminfo", "MemTotal") or "0 kB"
    return {
        "checkout": _checkout(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu": _first("/proc/cpuinfo", "model name") or platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "ram_gib": round(int(memory.split()[0]) / 2**20, 1),
        "kernel": f"{platform.system()} {platform.release()}",
        "filesystem": _filesystem(directory),
        "proactive_reclaim": _proactive_reclaim(),
        "load_average_start": round(os.getloadavg()[0], 2),
        **versions,
    }


def describe_machine(info: Dict[str, Any]) -> str:
    """One paragraph about the machine."""
    names = ("torch", "numpy", "safetensors", "ironsafe", "fastsafetensors")
    libraries = ", ".join(f"{name} {info[name]}" for name in names if info.get(name))
    gpu = f"GPU: {info['gpu']}" if info.get("gpu") else "no GPU"
    reclaim = f" ({info['proactive_reclaim']})" if info.get("proactive_reclaim") else ""
    return (
        f"{info['cpu']}, {info['cores']} cores, {info['ram_gib']} GiB RAM{reclaim}, {gpu}; {info['kernel']}; "
        f"bench files on {info['filesystem']}; Python {info['python']}, {libraries} "
        f"(imported from {info['ironsafe_path']}; checkout {info['checkout']}); {info['date']}; "
        f"load average {info['load_average_start']} at the start, {info.get('load_average_end', '?')} at the end"
    )


# --- summaries --------------------------------------------------------------------


def summarize(job: Dict[str, Any], samples: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Median, min and max seconds, GB/s at the median, the median peak
    extra memory, and the worst page-cache residency before the step
    (highest when asked cold, lowest when asked warm) of one measurement."""
    good = [sample for sample in samples if not sample.get("error")]
    summary: Dict[str, Any] = {
        "name": job["name"],
        "cache": job.get("cache"),
        "samples": len(good),
        "errors": [sample["error"] for sample in samples if sample.get("error")],
    }
    if not good:
        return summary
    seconds = [sample["seconds"] for sample in good]
    median = statistics.median(seconds)
    resident = [sample["resident"] for sample in good if sample["resident"] is not None]
    summary.update(
        median=median,
        min=min(seconds),
        max=max(seconds),
        bytes=good[0]["bytes"],
        tensors=good[0]["tensors"],
        gbps=good[0]["bytes"] / median / 1e9 if median > 0 else None,
        peak_extra_mb=statistics.median(sample["peak_extra"] for sample in good) / 1e6,
        resident=(max(resident) if summary["cache"] == "cold" else min(resident)) if resident else None,
    )
    return summary


def summarize_row(scenario: Scenario, row: Row, measured: Dict[str, Dict[str, Any]]) -> Dict[str, Any]:
    """A row: both sides, the ratio (other / ironsafe, from the medians)
    and whether the target is met."""
    other, iron = measured[row.other], measured[row.ironsafe]
    ratio = other["median"] / iron["median"] if "median" in other and "median" in iron else None
    baseline_names = {key: scenario.jobs[key]["name"] for key in scenario.baselines}
    result: Dict[str, Any] = {
        "scenario": scenario.name,
        "label": row.label,
        "other": other,
        "ironsafe": iron,
        "ratio": ratio,
        "target": row.target.describe(baseline_names) if row.target else None,
        "target_ratio": row.target.ratio if row.target else None,
        "met": None,
        "of_baseline": None,
        "note": row.note,
    }
    if row.target is None or ratio is None:
        return result
    met = ratio >= row.target.ratio
    if row.target.baseline is not None:
        base = measured[row.target.baseline].get("gbps")
        share = iron["gbps"] / base if base else None
        result["of_baseline"] = share
        met = met and share is not None and share >= row.target.fraction
    result["met"] = met
    return result


# --- markdown ------------------------------------------------------------------------


def _seconds(value: float, unit: float) -> str:
    scaled = value / unit
    return f"{scaled:.3g}" if scaled < 100 else f"{scaled:.0f}"


def timing(summary: Dict[str, Any]) -> str:
    """``median [min..max] unit`` (and how many samples failed), or the error."""
    if "median" not in summary:
        return "error: " + (summary["errors"][-1].splitlines()[-1] if summary["errors"] else "no sample")
    median = summary["median"]
    unit, name = (1.0, "s") if median >= 1 else (1e-3, "ms") if median >= 1e-3 else (1e-6, "µs")
    low, high = _seconds(summary["min"], unit), _seconds(summary["max"], unit)
    failed = f" ({len(summary['errors'])} failed)" if summary["errors"] else ""
    return f"{_seconds(median, unit)} {name} [{low}..{high}]{failed}"


def _number(value: Optional[float], digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _percent(value: Optional[float]) -> str:
    return "—" if value is None else f"{value:.0%}"


def _target(row: Dict[str, Any]) -> str:
    if row["target"] is None:
        return "—"
    if row["met"] is None:
        return f"no result: {row['target']}"
    mark = "✓ met" if row["met"] else "✗ not met"
    share = f" (ironsafe at {row['of_baseline']:.0%})" if row["of_baseline"] is not None else ""
    return f"{mark}: {row['target']}{share}"


def _cache_misses(result: Dict[str, Any]) -> List[str]:
    """A line for each measurement whose file was not in the page-cache state
    asked for: still partly cached when cold (eviction failed), or not
    wholly cached when warm."""
    lines = []
    sides = [side for row in result["rows"] for side in (row["other"], row["ironsafe"])]
    for summary in sides + result["baselines"]:
        resident = summary.get("resident")
        if summary["cache"] == "cold" and resident is not None and resident > 0.01:
            lines.append(f"{summary['name']}: eviction failed, {resident:.0%} of the file was cached before a sample")
        if summary["cache"] == "warm" and resident is not None and resident < 0.99:
            lines.append(f"{summary['name']}: only {resident:.0%} of the file was cached before a sample")
    return sorted(set(lines))


def _sizes(config: Dict[str, Any]) -> str:
    """The sizes of the LLM files that the scenarios run used."""
    sizes = []
    if set(config["scenarios"]) - {"gpu"}:
        sizes.append(f"LLM file {config['size'] / 1e9:g} GB")
    if "gpu" in config["scenarios"]:
        sizes.append(f"GPU file {config['gpu_size'] / 1e9:g} GB")
    return ", ".join(sizes)


def format_ratio(row: Dict[str, Any]) -> str:
    """The row's ratio to two decimals, or three where two would round it
    onto its target (1.998x is not 2.00x: it misses a 2x target)."""
    ratio, target = row["ratio"], row["target_ratio"]
    if target is not None and round(ratio, 2) == target and ratio != target:
        return f"{ratio:.3f}x"
    return f"{ratio:.2f}x"


def markdown(result: Dict[str, Any]) -> str:
    """The report as markdown: machine, method, the table, baselines, notes."""
    config = result["config"]
    lines = [
        f"# ironsafe vs safetensors {result['machine']['safetensors']}: benchmark",
        "",
        f"**Machine**: {describe_machine(result['machine'])}.",
        "",
        f"**Method**: {_sizes(config)} (bf16, Llama-shaped); "
        f"samples: {config['samples']} per implementation, each in a fresh process, implementations interleaved, every other round in reverse order (A B, B A, ...). "
        "Times are median [min..max] of the measured step alone; ratio = other median / ironsafe median "
        "(above 1: ironsafe is faster); GB/s at the median; peak extra = peak RSS of the worker during the "
        "step minus its RSS just before (median, MB; mapped file pages count as RSS); cache = page-cache "
        "residency of the file just before the step (worst sample). Every load touches one byte per 4 KiB page.",
        "",
        "| scenario | other | other: median [min..max] | ironsafe: median [min..max] | ratio | GB/s other / ironsafe "
        "| peak extra MB other / ironsafe | cache other / ironsafe | target |",
        "|---|---|---|---|---:|---|---|---|---|",
    ]
    for row in result["rows"]:
        other, iron = row["other"], row["ironsafe"]
        ratio = "—" if row["ratio"] is None else format_ratio(row)
        lines.append(
            f"| {row['label']} | {other['name']} | {timing(other)} | {timing(iron)} | {ratio} "
            f"| {_number(other.get('gbps'))} / {_number(iron.get('gbps'))} "
            f"| {_number(other.get('peak_extra_mb'), 0)} / {_number(iron.get('peak_extra_mb'), 0)} "
            f"| {_percent(other.get('resident'))} / {_percent(iron.get('resident'))} | {_target(row)} |"
        )
    if result["baselines"]:
        lines += ["", "| baseline | median [min..max] | GB/s | peak extra MB | cache |", "|---|---|---|---|---|"]
        for base in result["baselines"]:
            lines.append(
                f"| {base['name']} | {timing(base)} | {_number(base.get('gbps'))} "
                f"| {_number(base.get('peak_extra_mb'), 0)} | {_percent(base.get('resident'))} |"
            )
    notes = [f"- {row['label']}: {row['note']}" for row in result["rows"] if row["note"]]
    notes += [f"- {line}" for line in _cache_misses(result)]
    notes += [f"- {line}" for line in result["notes"]]
    if notes:
        lines += ["", "**Notes**:", "", *notes]
    return "\n".join(lines) + "\n"


# --- chart ---------------------------------------------------------------------------


def chart(result: Dict[str, Any], path: str) -> None:
    """Two panels, one bar per row: the ratio (log scale, the target as a
    tick; green met, red not met, grey no target), and GB/s of both sides."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [row for row in result["rows"] if row["ratio"] is not None]
    labels = [row["label"] for row in rows]
    positions = list(range(len(rows)))[::-1]
    figure, (left, right) = plt.subplots(1, 2, figsize=(15, 1.2 + 0.45 * len(rows)), sharey=True)
    colors = ["#999999" if row["met"] is None else "#2e7d32" if row["met"] else "#c62828" for row in rows]
    # Bars grow from 1: right where ironsafe is faster, left where it is slower.
    left.barh(positions, [row["ratio"] - 1 for row in rows], left=1, color=colors)
    for y, row in zip(positions, rows):
        if row["target_ratio"] is not None:
            left.plot([row["target_ratio"]], [y], "k|", markersize=14)
        end = max(row["ratio"], 1.0)  # losses are labelled right of 1, clear of their bar
        left.annotate(format_ratio(row), (end, y), xytext=(3, -3), textcoords="offset points", fontsize=8)
    left.axvline(1.0, color="black", linewidth=0.8)
    left.set_xscale("log")
    left.set_yticks(positions, labels, fontsize=8)
    left.set_xlabel("ratio = other time / ironsafe time (log; | = target)")
    height = 0.4
    right.barh([y + height / 2 for y in positions], [row["other"].get("gbps") or 0 for row in rows], height,
               label="other (reference, torch, ...)", color="#90a4ae")  # fmt: skip
    right.barh([y - height / 2 for y in positions], [row["ironsafe"].get("gbps") or 0 for row in rows], height,
               label="ironsafe", color="#ef6c00")  # fmt: skip
    right.set_xlabel("GB/s (median)")
    right.legend(fontsize=8, loc="best")
    info = result["machine"]
    figure.suptitle(
        f"ironsafe vs safetensors {info['safetensors']}: {_sizes(result['config'])}, "
        f"{result['config']['samples']} samples\n{info['cpu']}, {info['cores']} cores, {info['ram_gib']} GiB, "
        f"{info['kernel']}, {info['filesystem'].split(' at ')[0]}, Python {info['python']}, torch {info['torch']}, "
        f"ironsafe {info['ironsafe']} ({info['checkout']}), {info['date']}",
        fontsize=9,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write(result: Dict[str, Any], out: str) -> str:
    """Writes latest.md, latest.json and latest.png to ``out``; returns the markdown."""
    os.makedirs(out, exist_ok=True)
    text = markdown(result)
    with open(os.path.join(out, "latest.md"), "w") as file:
        file.write(text)
    with open(os.path.join(out, "latest.json"), "w") as file:
        json.dump(result, file, indent=1, ensure_ascii=False)
        file.write("\n")
    chart(result, os.path.join(out, "latest.png"))
    return text
