"""What a study leaves a person to read: best.yaml, the trials table, plots, the best trial's report.

``OUT/best.yaml`` is the best trial's config as ``polydistill run`` runs it (the base config's
compression and evaluation settings included); with several objectives each trial of the Pareto
front also gets ``OUT/pareto/trial-NNNN.yaml``. ``OUT/trials.csv`` and ``OUT/search_report.md``
/ ``.html`` list every trial; the plots (matplotlib, no browser) show the optimisation history,
the trials' learning curves with the pruned ones, the parameters' importances and the Pareto
front. The best trial's student is evaluated beside its teacher once, into its trial directory
(``report.html``, ``metrics.json``, model card), as a run's student is.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
from pathlib import Path
from typing import Any

import yaml

from polydistill.atomic import atomic_write_text
from polydistill.console import console
from polydistill.evaluation.report.render import _CSS, markdown_table
from polydistill.search.config import OBJECTIVE_DIRECTIONS
from polydistill.search.space import decode
from polydistill.search.study import BASELINE_ATTR, ERROR_ATTR, INTERRUPTED_ATTR, outcome_of, redacted
from polydistill.search.trial import SearchSetup, best_trials, full_config

SUMMARY_FILE = "search.json"
OBJECTIVE_LABELS = {"mean": "mean over languages", "worst": "worst language", "latency": "latency ms (batch 1)", "size": "parameters"}


def decoded_params(setup: SearchSetup, trial: Any) -> dict[str, Any]:
    """A finished trial's parameters as config values (non-scalar choices parsed back from JSON)."""
    return {name: decode(setup.search.space[name], value) for name, value in trial.params.items() if name in setup.search.space}


def write_results(setup: SearchSetup, study: Any, *, storage_url: str, evaluate_best: bool = True) -> dict[str, Any]:
    """Every result file of the study in ``setup.out``; the summary (``search.json``) as a dict."""
    from polydistill.training.provenance import resolved_config

    out = setup.out
    best = best_trials(study)
    header, rows = trials_table(setup, study)
    _write_csv(out / "trials.csv", header, rows)
    plots = write_plots(setup, study, out / "plots")
    summary: dict[str, Any] = {
        "study": study.study_name,
        "storage": redacted(storage_url),
        "optimize": {name: OBJECTIVE_DIRECTIONS[name] for name in setup.search.optimize},
        "sampler": setup.search.sampler_name,
        "pruner": setup.search.pruner if len(setup.search.optimize) == 1 else "none",
        "trials": _counts(study),
    }
    baseline = next((t for t in study.get_trials(deepcopy=False) if t.user_attrs.get(BASELINE_ATTR) and t.values), None)
    if baseline is not None:
        summary["baseline"] = {"trial": baseline.number, "values": dict(zip(setup.search.optimize, baseline.values, strict=True))}
    if best:
        leader = _leader(setup, best)
        best_dir = setup.trial_dir(leader.number)
        best_config = full_config(setup, decoded_params(setup, leader), out / "best-run")
        atomic_write_text(out / "best.yaml", _yaml_with_header(resolved_config(best_config, out / "best-run"), leader))
        summary["best"] = {
            "trial": leader.number,
            "values": dict(zip(setup.search.optimize, leader.values, strict=True)),
            "params": decoded_params(setup, leader),
            "directory": str(best_dir),
            "config": str(out / "best.yaml"),
        }
        if len(setup.search.optimize) > 1:
            for trial in best:
                config = full_config(setup, decoded_params(setup, trial), out / "pareto" / f"trial-{trial.number:04d}")
                path = out / "pareto" / f"trial-{trial.number:04d}.yaml"
                path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_text(path, _yaml_with_header(resolved_config(config, path.with_suffix("")), trial))
            summary["pareto_front"] = [
                {"trial": t.number, "values": dict(zip(setup.search.optimize, t.values, strict=True)), "params": decoded_params(setup, t)}
                for t in best
            ]
        if evaluate_best and (best_dir / "student").is_dir():
            summary["best"]["report"] = _evaluate_best(setup, leader, best_dir)
    atomic_write_text(out / SUMMARY_FILE, json.dumps(summary, indent=2, default=str) + "\n")
    markdown, page = render_report(setup, summary, header, rows, plots)
    atomic_write_text(out / "search_report.md", markdown)
    atomic_write_text(out / "search_report.html", page)
    return summary


def _leader(setup: SearchSetup, best: list[Any]) -> Any:
    """The one trial best.yaml holds: the best, or on a Pareto front the best in the first quality objective."""
    index = next(i for i, name in enumerate(setup.search.optimize) if name in ("mean", "worst"))
    return max(best, key=lambda trial: trial.values[index])


def _evaluate_best(setup: SearchSetup, leader: Any, best_dir: Path) -> str | None:
    """The best trial's student scored beside the teacher, as its run would have (report.html in its directory)."""
    from polydistill.training.run import evaluate_saved_run

    console.rule(f"Best trial {leader.number}: the student beside its teacher")
    config = full_config(setup, decoded_params(setup, leader), best_dir)
    metrics = evaluate_saved_run(config.model_copy(update={"compress": None}), best_dir)
    quality = _mean_primary(metrics)
    if quality is not None:
        console.print(
            f"[bold]Best trial {leader.number}[/] report: student {quality:.4f} mean over languages (trial scored {leader.values[0]:.4f})"
        )
    return str(best_dir / "report.html")


def _mean_primary(metrics: dict[str, Any]) -> float | None:
    metric = metrics.get("primary_metric")
    values = [entry["student"].get(metric) for entry in (metrics.get("languages") or {}).values() if isinstance(entry.get("student"), dict)]
    values = [v for v in values if isinstance(v, int | float)]
    return sum(values) / len(values) if values else None


def _yaml_with_header(config: dict[str, Any], trial: Any) -> str:
    values = ", ".join(f"{value:.6g}" for value in trial.values)
    head = f"# polydistill search: trial {trial.number} ({values}); `polydistill run` this file to reproduce it with the full run\n"
    return head + yaml.safe_dump(config, sort_keys=False, allow_unicode=True)


def _counts(study: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        key = outcome_of(trial)
        counts[key] = counts.get(key, 0) + 1
    return counts


def trials_table(setup: SearchSetup, study: Any) -> tuple[list[str], list[list[str]]]:
    """One row per trial: its outcome, objective values, parameters, time and the reason it stopped early."""
    names = list(setup.search.space)
    objectives = list(setup.search.optimize)
    header = ["trial", "outcome", *objectives, *[n for n in ("mean", "worst") if n not in objectives], *names, "steps", "seconds", "note"]
    best = {trial.number for trial in best_trials(study)}
    rows = []
    for trial in study.get_trials(deepcopy=False):
        attrs = trial.user_attrs
        outcome = outcome_of(trial)
        values = dict(zip(objectives, trial.values, strict=True)) if trial.values else {}
        extra = [_number(attrs.get(n)) for n in ("mean", "worst") if n not in objectives]
        params = decoded_params(setup, trial)
        steps = attrs.get("steps", max(trial.intermediate_values) if trial.intermediate_values else "")
        if outcome == "interrupted":
            note = attrs.get(INTERRUPTED_ATTR, "its worker stopped sending heartbeats")
        else:
            note = attrs.get(ERROR_ATTR) or ("the config's own values" if attrs.get(BASELINE_ATTR) else "")
        rows.append(
            [
                f"{trial.number}{' *' if trial.number in best else ''}",
                outcome,
                *[_number(values.get(name)) for name in objectives],
                *extra,
                *[_shown(params[n]) if n in params else "" for n in names],
                str(steps),
                _number(attrs.get("seconds"), digits=0),
                str(note)[:160],
            ]
        )
    return header, rows


def _shown(value: Any) -> str:
    """A parameter value for a table: floats to 6 significant digits, everything else as JSON."""
    return f"{value:.6g}" if isinstance(value, float) else json.dumps(value)


def _number(value: Any, digits: int = 4) -> str:
    if not isinstance(value, int | float) or not math.isfinite(value):
        return ""
    return f"{value:.{digits}f}" if abs(value) < 1e5 else f"{value:,.0f}"


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


# --------------------------------------------------------------------------- plots


def write_plots(setup: SearchSetup, study: Any, directory: Path) -> dict[str, Path]:
    """The study's plots that its trials allow (importances need two complete trials, a front two objectives)."""
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    plots: dict[str, Path] = {}
    if complete:
        plots["history"] = _plot_history(setup, study, directory / "history.png")
    if any(t.intermediate_values for t in study.get_trials(deepcopy=False)):
        plots["curves"] = _plot_curves(setup, study, directory / "curves.png")
    if len(complete) >= 2 and len(setup.search.space) >= 1:
        path = _plot_importances(setup, study, directory / "importances.png")
        if path is not None:
            plots["importances"] = path
    if len(setup.search.optimize) >= 2 and complete:
        plots["pareto"] = _plot_pareto(setup, study, directory / "pareto.png")
    return plots


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure: Any, path: Path) -> Path:
    from polydistill.evaluation.report.plots import _save as save_png

    saved = save_png(figure, path)
    _figure().close(figure)
    return saved


def _label(study: Any, objective: str) -> str:
    """An axis label: the objective, with the primary metric it is taken of (``macro_f1, mean over languages``)."""
    if objective not in ("mean", "worst"):
        return OBJECTIVE_LABELS[objective]
    metric = next((t.user_attrs["metric"] for t in study.get_trials(deepcopy=False) if "metric" in t.user_attrs), None)
    return f"{metric}, {OBJECTIVE_LABELS[objective]}" if metric else OBJECTIVE_LABELS[objective]


def _plot_history(setup: SearchSetup, study: Any, path: Path) -> Path:
    from matplotlib.ticker import MaxNLocator
    from optuna.trial import TrialState

    plt = _figure()
    objectives = setup.search.optimize
    figure, axes = plt.subplots(1, len(objectives), figsize=(6 * len(objectives), 3.6), squeeze=False)
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    for index, name in enumerate(objectives):
        axis = axes[0][index]
        numbers = [t.number for t in trials]
        values = [t.values[index] for t in trials]
        axis.scatter(numbers, values, s=22, color="#1f77b4", label="complete trial", zorder=3)
        running, best = [], None
        better = max if OBJECTIVE_DIRECTIONS[name] == "maximize" else min
        for value in values:
            best = value if best is None else better(best, value)
            running.append(best)
        axis.step(numbers, running, where="post", color="#d62728", label="best so far")
        pruned = [t for t in study.get_trials(deepcopy=False, states=(TrialState.PRUNED,)) if t.intermediate_values]
        if pruned and len(objectives) == 1:
            last = [t.intermediate_values[max(t.intermediate_values)] for t in pruned]
            axis.scatter([t.number for t in pruned], last, s=18, marker="x", color="#7f7f7f", label="pruned (last report)")
        axis.set_xlabel("trial")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_ylabel(_label(study, name))
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle(f"Optimisation history: {study.study_name}")
    figure.tight_layout()
    return _save(figure, path)


def _plot_curves(setup: SearchSetup, study: Any, path: Path) -> Path:
    from optuna.trial import TrialState

    plt = _figure()
    figure, axis = plt.subplots(figsize=(7, 3.8))
    for trial in study.get_trials(deepcopy=False):
        if not trial.intermediate_values:
            continue
        steps = sorted(trial.intermediate_values)
        pruned = trial.state == TrialState.PRUNED
        axis.plot(
            steps,
            [trial.intermediate_values[s] for s in steps],
            marker="x" if pruned else "o",
            markersize=3,
            linestyle=":" if pruned else "-",
            color="#7f7f7f" if pruned else None,
            alpha=0.7,
        )
    quality = next(n for n in setup.search.optimize if n in ("mean", "worst"))
    axis.set_xlabel("training step")
    axis.set_ylabel(_label(study, quality))
    axis.set_title("What the pruner saw: each trial's score during training (dotted grey: pruned)")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    return _save(figure, path)


def _plot_importances(setup: SearchSetup, study: Any, path: Path) -> Path | None:
    import optuna

    try:
        importances = optuna.importance.get_param_importances(study, target=(lambda t: t.values[0]) if len(study.directions) > 1 else None)
    except (RuntimeError, ValueError, ZeroDivisionError) as error:  # too few or too alike trials to rank parameters
        console.print(f"[yellow]Search[/] no parameter importances: {error}")
        return None
    if not importances:
        return None
    plt = _figure()
    names = list(importances)[::-1]
    figure, axis = plt.subplots(figsize=(7, 0.5 * len(names) + 1.4))
    axis.barh(names, [importances[n] for n in names], color="#1f77b4")
    axis.set_xlabel(f"importance for {_label(study, setup.search.optimize[0])} (fANOVA, sums to 1)")
    axis.set_title("Which parameters mattered")
    figure.tight_layout()
    return _save(figure, path)


def _plot_pareto(setup: SearchSetup, study: Any, path: Path) -> Path:
    from optuna.trial import TrialState

    plt = _figure()
    objectives = setup.search.optimize
    x_name, y_name = objectives[1], objectives[0]
    x, y = objectives.index(x_name), objectives.index(y_name)
    front = {t.number for t in best_trials(study)}
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    figure, axis = plt.subplots(figsize=(6.5, 4.2))
    others = [t for t in trials if t.number not in front]
    on_front = sorted((t for t in trials if t.number in front), key=lambda t: t.values[x])
    axis.scatter([t.values[x] for t in others], [t.values[y] for t in others], s=20, color="#9e9e9e", label="trial")
    axis.plot([t.values[x] for t in on_front], [t.values[y] for t in on_front], "o-", color="#d62728", label="Pareto front")
    for trial in on_front:
        axis.annotate(str(trial.number), (trial.values[x], trial.values[y]), textcoords="offset points", xytext=(4, 4), fontsize=8)
    axis.set_xlabel(_label(study, x_name))
    axis.set_ylabel(_label(study, y_name))
    axis.set_title("Pareto front" + (f" ({', '.join(objectives[2:])} not shown)" if len(objectives) > 2 else ""))
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    return _save(figure, path)


# --------------------------------------------------------------------------- the report


def render_report(
    setup: SearchSetup, summary: dict[str, Any], header: list[str], rows: list[list[str]], plots: dict[str, Path]
) -> tuple[str, str]:
    """``search_report.md`` and ``search_report.html``: the study, its best trial, every trial, the plots."""
    lines = [f"# Search: {summary['study']}", "", *_summary_lines(setup, summary), "", "## Trials", ""]
    lines += markdown_table(header, rows)
    lines += ["", "`*`: the best trial (or a trial of the Pareto front)."]
    for key, path in plots.items():
        lines += ["", f"![{key}]({path.relative_to(setup.out)})"]
    markdown = "\n".join(lines) + "\n"

    esc = html.escape
    parts = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        f"<title>Search: {esc(summary['study'])}</title><style>{_CSS}</style></head><body>",
        f"<h1>Search: {esc(summary['study'])}</h1>",
        "<ul>" + "".join(f"<li>{esc(line.removeprefix('- '))}</li>" for line in _summary_lines(setup, summary)) + "</ul>",
        "<h2>Trials</h2>",
        '<div class="scroll"><table><tr>' + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>",
        *["<tr>" + "".join(f"<td>{esc(cell)}</td>" for cell in row) + "</tr>" for row in rows],
        "</table></div>",
    ]
    for key, path in plots.items():
        encoded = base64.b64encode(path.read_bytes()).decode("ascii")
        parts.append(f'<img alt="{esc(key)}" src="data:image/png;base64,{encoded}">')
    parts.append("</body></html>")
    return markdown, "\n".join(parts) + "\n"


def _summary_lines(setup: SearchSetup, summary: dict[str, Any]) -> list[str]:
    counts = ", ".join(f"{count} {name}" for name, count in sorted(summary["trials"].items()))
    optimize = ", ".join(f"{OBJECTIVE_LABELS[name]} ({direction})" for name, direction in summary["optimize"].items())
    lines = [
        f"- Study `{summary['study']}` in `{summary['storage']}`: {counts}",
        f"- Optimised: {optimize}; sampler {summary['sampler']}, pruner {summary['pruner']}",
    ]
    best = summary.get("best")
    if best is None:
        return [*lines, "- No trial completed: nothing to recommend; see the notes in the table"]
    values = ", ".join(f"{OBJECTIVE_LABELS[name]} {value:.4g}" for name, value in best["values"].items())
    params = ", ".join(f"{name} = {_shown(value)}" for name, value in best["params"].items())
    lines += [
        f"- Best trial {best['trial']}: {values}; {params}",
        f"- Rerun it in full: `polydistill run {best['config']}`",
    ]
    if summary.get("baseline"):
        own = summary["baseline"]
        compared = ", ".join(
            f"{OBJECTIVE_LABELS[name]} {own['values'][name]:.4g} (best {best['values'][name] - own['values'][name]:+.4g})"
            for name in own["values"]
        )
        lines.append(f"- The config's own values (trial {own['trial']}): {compared}")
    if best.get("report"):
        lines.append(f"- Its student beside the teacher: {best['report']}")
    if summary.get("pareto_front"):
        lines.append(f"- Pareto front: trials {', '.join(str(t['trial']) for t in summary['pareto_front'])} (configs in pareto/)")
    return lines
