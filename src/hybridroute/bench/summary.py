"""Medians across repeated runs of ``bench compression`` (with or without ``--variants``) and ``bench load``.

Latency on a shared 2-core machine moves by half between runs of the same command, so a single run's p95 is not
a figure to publish. ``summarise_runs`` reads several saved results of the same model on the same test set and
machine, measured with the same settings, and reports each timing's median, minimum and maximum across them,
with every run's value beside it. Accuracy is deterministic: it is reported once, and a run that disagrees is
named. ``summarise_variant_runs`` does the same for ``bench compression --variants`` results, per variant and
timed path (fast or batch path, 1 or 2 threads). ``summarise_load_runs`` does it for the throughput and latency
of each served configuration of ``bench load`` runs with one set-up, and for the batched service's speed-ups
over the others. ``summarise`` picks by what the files hold. Runs whose settings differ are refused, naming the
setting and each run's value.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hybridroute.errors import DataError

LATENCY_STATS = ("p50", "p95", "p99")
Column = tuple[str, Mapping[str, Any] | None, int, str]  # title, spread (None: not measured), digits, unit
ACCURACY_FIELDS = ("accuracy", "accuracy_single_query", "macro_f1")
COMPRESSION_SETTINGS = ("threads", "batch_size", "tutorial_length", "repeats", "latency_queries", "warmup", "limit")
SAME_IN_EVERY_RUN = (
    ("run", "model_version"),
    ("test_rows",),
    ("machine", "cpu_model"),
    *(("settings", name) for name in COMPRESSION_SETTINGS),
)
VARIANT_SETTINGS = ("repeats", "latency_queries", "warmup", "batch_size", "throughput_texts", "throughput_threads")
SAME_IN_EVERY_VARIANTS_RUN = (("test_rows",), ("machine", "cpu_model"), *(("settings", n) for n in VARIANT_SETTINGS))
VARIANT_PATHS = ("fast_path_t1", "fast_path_t2", "batch_path_t1", "batch_path_t2")  # batch path: reference rows only
VARIANT_TIMINGS = (
    *(("latency_ms", path, stat) for path in VARIANT_PATHS for stat in LATENCY_STATS),
    ("throughput_qps",),
)
COMPRESSION_TIMINGS = (
    *(("latency_ms", stat) for stat in LATENCY_STATS),
    ("tutorial_protocol_latency_ms", "p95"),
    ("speedup_vs_tutorial_p95",),
    ("throughput_qps",),
)
LOAD_TIMINGS = (
    ("throughput_rps",),
    *(("latency_ms", stat) for stat in LATENCY_STATS),
    ("server_cpu_ms_per_request",),  # results saved before it was measured have none: left out
    ("server_cores",),
    ("machine_busy_pct",),
)
LOAD_CONFIGURATIONS = ("batched", "unbatched", "plain")
LOAD_SPEEDUPS = ("batched_vs_unbatched", "batched_vs_plain")
LOAD_CPU_RATIO = "unbatched_vs_batched"  # server CPU per request: the speed-up's ceiling when both are CPU-bound
SAME_IN_EVERY_LOAD_RUN = (
    ("settings", "concurrency"),
    ("settings", "rate_rps"),
    ("settings", "duration_s"),
    ("settings", "processes"),
    ("settings", "texts", "source"),
    ("settings", "server", "run"),
    ("settings", "server", "max_batch"),
    ("settings", "server", "max_wait_ms"),
    ("settings", "server", "workers"),
    ("settings", "server", "threads"),
    ("settings", "server", "policy"),
    ("settings", "server", "replicas"),
    ("machine", "cpu_model"),
)
# Settings added after results were first saved: what a result without the field measured.
SAVED_BEFORE_THE_FIELD: dict[tuple[str, ...], Any] = {("settings", "server", "replicas"): 1}

DEFINITIONS = {
    "timings": "per model: {median, min, max, runs} across the runs of each run's own figure (itself a median "
    "over that run's repeats)",
    "speedup_vs_tutorial_p95": "median across runs of each run's speed-up, not the ratio of the medians",
    "accuracy": "each field from the first run that measured it; accuracy_differs names the runs that disagree",
}
VARIANT_DEFINITIONS = {
    "timings": "per variant: {median, min, max, runs} across the runs of each run's own figure (itself a median "
    "over that run's repeats); latency_ms.PATH.STAT per timed path, a path missing from any run left out",
    "accuracy": "each field from the first run that measured it; accuracy_differs names the runs that disagree",
}
# Counted per phase by `bench load`, summed over the runs: failed requests, and open-loop requests due but never sent.
LOAD_COUNTS = ("errors", "unsent")
LOAD_DEFINITIONS = {
    "configurations": "per served configuration measured in every run: {median, min, max, runs} of its "
    "throughput and latency percentiles, and its errors and unsent requests (open loop: due, never sent) "
    "summed over the runs",
    "speedup": "median across runs of each run's ratio of throughputs, not the ratio of the medians",
    "server_cpu_ratio": "median across runs of each run's unbatched / batched server CPU per request (left out when "
    "a run did not measure it)",
}


def load_result(path: Path) -> dict[str, Any]:
    """One saved ``bench compression`` (``--variants`` too) or ``bench load`` result; a ``DataError`` for others."""
    try:
        result = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a readable JSON file ({exc})") from None
    if not isinstance(result, dict) or result_kind(result) is None:
        raise DataError(
            f"{path}: not a `bench compression` result ('models' with 'latency_ms' per model, with or without "
            "--variants) nor a `bench load` result ('benchmark': 'load' with a 'batched' configuration)"
        )
    return result


def result_kind(result: Mapping[str, Any]) -> str | None:
    """'compression', 'variants' (``bench compression --variants``), 'load', or None for anything else.

    Example: result_kind({"benchmark": "load", "batched": {"throughput_rps": 1.0}}) -> "load"
    Example: result_kind({"models": {"int8-opt": {"latency_ms": {"fast_path_t1": {"p95": 2.0}}}}}) -> "variants"
    """
    if result.get("benchmark") == "load":
        return "load" if isinstance(result.get("batched"), dict) else None
    models = result.get("models")
    if not isinstance(models, dict) or not all(
        isinstance(m, dict) and isinstance(m.get("latency_ms"), dict) for m in models.values()
    ):
        return None
    latencies = [value for m in models.values() for value in m["latency_ms"].values()]
    return "variants" if latencies and all(isinstance(v, dict) for v in latencies) else "compression"


def _field(result: Mapping[str, Any], keys: Sequence[str]) -> Any:
    value: Any = result
    for key in keys:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def _setting(result: Mapping[str, Any], keys: Sequence[str]) -> Any:
    """:func:`_field`, or what a result saved before the field existed measured."""
    value = _field(result, keys)
    return SAVED_BEFORE_THE_FIELD.get(tuple(keys)) if value is None else value


def check_comparable(
    results: Sequence[Mapping[str, Any]],
    names: Sequence[str],
    same: Sequence[Sequence[str]] = SAME_IN_EVERY_RUN,
) -> None:
    """Refuse runs that measured different things (by default another model, test-set size, CPU or setting)."""
    if len(results) < 2:
        raise DataError(f"a summary needs at least two runs, got {len(results)}")
    for keys in same:
        values = {name: _setting(r, keys) for name, r in zip(names, results, strict=True)}
        if len(set(map(str, values.values()))) > 1:
            found = ", ".join(f"{name}: {value}" for name, value in values.items())
            raise DataError(f"the runs differ in {'.'.join(keys)} ({found}); summarise runs of one experiment only")


def spread(values: Sequence[float]) -> dict[str, Any]:
    """Median, minimum, maximum and the values themselves.

    Example: spread([5.37, 3.09, 5.96]) -> {"median": 5.37, "min": 3.09, "max": 5.96, "runs": [5.37, 3.09, 5.96]}
    """
    return {
        "median": float(np.median(values)),
        "min": float(min(values)),
        "max": float(max(values)),
        "runs": [float(v) for v in values],
    }


def _timings(runs: Sequence[Mapping[str, Any]], paths: Sequence[Sequence[str]]) -> dict[str, Any]:
    """Spreads of the numbers at ``paths`` (e.g. one model's timings); one missing from any run is left out."""
    found: dict[str, Any] = {}
    for keys in paths:
        values = [_field(run, keys) for run in runs]
        if all(isinstance(v, int | float) for v in values):
            found[".".join(keys)] = spread(values)
    return found


def _accuracy(runs: Sequence[Mapping[str, Any]], names: Sequence[str]) -> dict[str, Any]:
    """Each accuracy field from the first run that has it, and the runs that disagree (a run without it does not)."""
    found = {f: next((run[f] for run in runs if run.get(f) is not None), None) for f in ACCURACY_FIELDS}
    differs = [
        name
        for name, run in zip(names, runs, strict=True)
        if any(run.get(f) is not None and run[f] != found[f] for f in ACCURACY_FIELDS)
    ]
    return found | {"accuracy_differs": differs}


def _run_entries(results: Sequence[Mapping[str, Any]], names: Sequence[str]) -> list[dict[str, Any]]:
    """Which file each run came from, when it ran and with what settings."""
    return [
        {"file": name, "timestamp_utc": _field(r, ("machine", "timestamp_utc")), "settings": r.get("settings")}
        for name, r in zip(names, results, strict=True)
    ]


def summarise_runs(results: Sequence[Mapping[str, Any]], names: Sequence[str]) -> dict[str, Any]:
    """Each model's timings across runs (median, min, max, per run) and its accuracy, for runs of one experiment.

    Raises:
        DataError: fewer than two runs, or runs of different models, test-set sizes, CPUs or settings.
    """
    check_comparable(results, names)
    shared = [m for m in results[0]["models"] if all(m in r["models"] for r in results)]
    return {
        "runs": _run_entries(results, names),
        "models": {
            m: {"timings": _timings([r["models"][m] for r in results], COMPRESSION_TIMINGS)}
            | _accuracy([r["models"][m] for r in results], names)
            for m in shared
        },
        "model_version": _field(results[0], ("run", "model_version")),
        "test_rows": results[0].get("test_rows"),
        "machine": results[0].get("machine"),
        "definitions": DEFINITIONS,
    }


def check_same_variants(results: Sequence[Mapping[str, Any]], names: Sequence[str], shared: Sequence[str]) -> None:
    """Refuse variant runs where a variant of one name was built by another recipe (another model)."""
    for model in shared:
        recipes = {name: r["models"][model].get("recipe") for name, r in zip(names, results, strict=True)}
        if len({json.dumps(recipe, sort_keys=True) for recipe in recipes.values()}) > 1:
            raise DataError(
                f"the runs built {model} by different recipes ({', '.join(recipes)}); "
                "summarise runs of one experiment only"
            )


def summarise_variant_runs(results: Sequence[Mapping[str, Any]], names: Sequence[str]) -> dict[str, Any]:
    """Each variant's timings per path across ``bench compression --variants`` runs, and its accuracy.

    A variant missing from any run is left out, and so is a path (the batch path is timed for the reference
    rows only).

    Raises:
        DataError: fewer than two runs, runs of different test-set sizes, CPUs or settings, or a variant built
            by different recipes.
    """
    check_comparable(results, names, SAME_IN_EVERY_VARIANTS_RUN)
    shared = [m for m in results[0]["models"] if all(m in r["models"] for r in results)]
    check_same_variants(results, names, shared)
    return {
        "benchmark": "variants",
        "runs": _run_entries(results, names),
        "models": {
            m: {"timings": _timings([r["models"][m] for r in results], VARIANT_TIMINGS)}
            | _accuracy([r["models"][m] for r in results], names)
            for m in shared
        },
        "test_rows": results[0].get("test_rows"),
        "machine": results[0].get("machine"),
        "definitions": VARIANT_DEFINITIONS,
    }


def summarise_load_runs(results: Sequence[Mapping[str, Any]], names: Sequence[str]) -> dict[str, Any]:
    """Each configuration's throughput and latency across ``bench load`` runs of one set-up, and the speed-ups.

    A configuration missing from any run (``bench load --url`` alone measures only the batched one) is left out.

    Raises:
        DataError: fewer than two runs, or runs with other load, server settings, texts or CPU.
    """
    check_comparable(results, names, SAME_IN_EVERY_LOAD_RUN)
    configurations = {}
    for name in LOAD_CONFIGURATIONS:
        phases = [r[name] for r in results if isinstance(r.get(name), Mapping)]
        if len(phases) == len(results):
            configurations[name] = _timings(phases, LOAD_TIMINGS) | {
                key: sum(int(p.get(key, 0)) for p in phases) for key in LOAD_COUNTS
            }
    cpu_ratio = _timings([r.get("server_cpu_ratio") or {} for r in results], [(LOAD_CPU_RATIO,)])
    return {
        "benchmark": "load",
        "runs": _run_entries(results, names),
        "configurations": configurations,
        "speedup": _timings([r.get("speedup") or {} for r in results], [(k,) for k in LOAD_SPEEDUPS]),
        **({"server_cpu_ratio": cpu_ratio} if cpu_ratio else {}),  # runs saved before it was measured have none
        "machine": results[0].get("machine"),
        "definitions": LOAD_DEFINITIONS,
    }


def summarise(results: Sequence[Mapping[str, Any]], names: Sequence[str]) -> dict[str, Any]:
    """The summary of runs of one benchmark, by what the files hold.

    See :func:`summarise_runs`, :func:`summarise_variant_runs` and :func:`summarise_load_runs`.

    Raises:
        DataError: the files hold results of different benchmarks, or see the summaries.
    """
    kinds = {name: result_kind(r) for name, r in zip(names, results, strict=True)}
    if len(set(kinds.values())) > 1:
        found = ", ".join(f"{name}: {kind}" for name, kind in kinds.items())
        raise DataError(f"the files hold results of different benchmarks ({found}); summarise one at a time")
    kind = next(iter(kinds.values()))
    if kind == "load":
        return summarise_load_runs(results, names)
    return summarise_variant_runs(results, names) if kind == "variants" else summarise_runs(results, names)


def _cell(found: Mapping[str, Any] | None, index: int | None, digits: int, unit: str) -> str:
    """One run's value (``index``) or the median (``None``) of a spread, formatted; a dash when not measured."""
    if found is None:
        return "—"
    value = found["median"] if index is None else found["runs"][index]
    return f"{value:.{digits}f}{unit}"


def _per_run_table(runs: Sequence[Mapping[str, Any]], columns: Sequence[Column]) -> list[str]:
    """Markdown lines: a header, one row per run, and a bold median row."""
    header = "| run | " + " | ".join(column[0] for column in columns) + " |"
    lines = [header, "|---" * (len(columns) + 1) + "|"]
    for index, run in enumerate(runs):
        cells = [_cell(found, index, digits, unit) for _, found, digits, unit in columns]
        lines.append(f"| {Path(run['file']).name} | " + " | ".join(cells) + " |")
    cells = [f"**{_cell(found, None, digits, unit)}**" for _, found, digits, unit in columns]
    return [*lines, "| **median** | " + " | ".join(cells) + " |"]


def _pct(fraction: float | None) -> str:
    return "—" if fraction is None else f"{100 * fraction:.2f}%"


def markdown_table(summary: Mapping[str, Any], model: str) -> str:
    """One row per run and a median row for ``model``'s timings, then the accuracy and the spread."""
    if model not in summary["models"]:
        raise DataError(f"no model {model!r} in every run; the runs share: {', '.join(summary['models'])}")
    figures = summary["models"][model]
    timings = figures["timings"]
    columns: list[Column] = [
        (title, timings.get(key), digits, unit)
        for title, key, digits, unit in (
            ("p50 ms", "latency_ms.p50", 2, ""),
            ("p95 ms", "latency_ms.p95", 2, ""),
            ("p99 ms", "latency_ms.p99", 2, ""),
            ("tutorial-protocol p95 ms", "tutorial_protocol_latency_ms.p95", 2, ""),
            ("speed-up at p95", "speedup_vs_tutorial_p95", 2, "×"),
            ("throughput q/s", "throughput_qps", 0, ""),
        )
    ]
    lines = [f"{model}, {len(summary['runs'])} runs", "", *_per_run_table(summary["runs"], columns)]
    p95 = timings["latency_ms.p95"]
    lines += [
        "",
        f"- p95 across runs: {p95['min']:.2f}–{p95['max']:.2f} ms (median {p95['median']:.2f})",
        f"- accuracy {_pct(figures['accuracy'])}, one query at a time {_pct(figures['accuracy_single_query'])}: "
        + (
            f"differs in {', '.join(figures['accuracy_differs'])}"
            if figures["accuracy_differs"]
            else "the same in every run"
        ),
    ]
    return "\n".join(lines)


def load_markdown_table(summary: Mapping[str, Any]) -> str:
    """One row per run and a median row: each configuration's throughput, the speed-ups and the batched p99."""
    configurations, speedups = summary["configurations"], summary["speedup"]
    columns: list[Column] = [
        (f"{name} req/s", configurations[name].get("throughput_rps"), 1, "") for name in configurations
    ]
    columns += [(key.replace("_vs_", " / "), speedups.get(key), 2, "×") for key in LOAD_SPEEDUPS]
    if cpu := summary.get("server_cpu_ratio", {}).get(LOAD_CPU_RATIO):
        columns.append(("CPU/request unbatched / batched", cpu, 2, "×"))
    columns += [
        (f"{name} machine busy %", busy, 0, "")
        for name in ("batched", "unbatched")
        if (busy := configurations.get(name, {}).get("machine_busy_pct"))  # runs saved before it was measured
    ]
    columns.append(("batched p99 ms", configurations["batched"].get("latency_ms.p99"), 1, ""))
    lines = [f"bench load, {len(summary['runs'])} runs", "", *_per_run_table(summary["runs"], columns)]
    errors = ", ".join(f"{name} {figures['errors']}" for name, figures in configurations.items())
    lines += ["", f"- errors over all runs: {errors}"]
    if unsent := ", ".join(f"{name} {f['unsent']}" for name, f in configurations.items() if f["unsent"]):
        lines.append(f"- requests due but never sent (open loop, clients fell behind): {unsent}")
    return "\n".join(lines)


def variants_markdown_table(summary: Mapping[str, Any], model: str | None = None) -> str:
    """The median p95 of every timed path and the throughput: one row per variant, or per run of ``model``."""
    paths = [p for p in VARIANT_PATHS if any(f"latency_ms.{p}.p95" in m["timings"] for m in summary["models"].values())]

    def columns(timings: Mapping[str, Any]) -> list[Column]:
        found: list[Column] = [(f"{p} p95 ms", timings.get(f"latency_ms.{p}.p95"), 2, "") for p in paths]
        return [*found, ("throughput q/s", timings.get("throughput_qps"), 0, "")]

    runs = len(summary["runs"])
    if model is not None:
        if model not in summary["models"]:
            raise DataError(f"no variant {model!r} in every run; the runs share: {', '.join(summary['models'])}")
        figures = summary["models"][model]
        lines = [f"{model}, {runs} runs", "", *_per_run_table(summary["runs"], columns(figures["timings"]))]
        return "\n".join([*lines, "", f"- accuracy {_pct(figures['accuracy'])}"])
    header = ["variant", *(title for title, *_ in columns({})), "accuracy"]
    lines = [f"bench compression --variants, median of {runs} runs", "", "| " + " | ".join(header) + " |"]
    lines.append("|---" * len(header) + "|")
    for name, figures in summary["models"].items():
        cells = [_cell(found, None, digits, unit) for _, found, digits, unit in columns(figures["timings"])]
        lines.append(f"| {name} | " + " | ".join([*cells, _pct(figures["accuracy"])]) + " |")
    differs = {name: figures["accuracy_differs"] for name, figures in summary["models"].items()}
    note = "; ".join(f"{name} in {', '.join(found)}" for name, found in differs.items() if found) or "none"
    return "\n".join([*lines, "", f"- accuracy that differs between runs: {note}"])
