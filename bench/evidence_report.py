"""evidence.md (and the README's evidence table) from bench/results/evidence*.json.

The JSON is the record (bench/evidence.py appends each finished run); everything here is derived
from it, so the report can be rebuilt at any time: ``python bench/evidence.py --report-only``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from bench_stats import markdown_table  # bench/bench_stats.py, beside this file
from evidence_stats import MARGIN, SETTLE, power, two_level_bootstrap, verdicts
from evidence_sweep import SWEEP_FILE, report_section

BASELINE = "bce"
METRIC_NAMES = {"roc_auc": "ROC-AUC", "pr_auc": "PR-AUC"}
PLANNED_SEEDS = 12


def _fmt(value, digits: int = 4, sign: bool = True) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def _values(data: dict, arm: str, metric: str) -> dict[int, float]:
    return {e["seed"]: e[metric] for e in data["arms"][arm]["seeds"] if e.get(metric) is not None}


def arm_verdicts(data: dict, metric: str) -> dict:
    """Per arm with seeds (BCE excluded): the :class:`evidence_stats.Verdict` on ``metric``."""
    base = _values(data, BASELINE, metric) if BASELINE in data["arms"] else {}
    arms = {name: _values(data, name, metric) for name, entry in data["arms"].items()
            if name != BASELINE and not entry.get("skipped") and entry["seeds"]}
    return verdicts(arms, base) if base else {}


def _bootstrap(data: dict, arm: str, metric: str, seeds: tuple[int, ...]) -> str:
    replicates = {e["seed"]: e["bootstrap"][metric] for e in data["arms"][arm]["seeds"]
                  if e["seed"] in seeds and e.get("bootstrap")}
    if len(replicates) < 2:
        return "–"
    _, low, high = two_level_bootstrap(replicates)
    suffix = "" if len(replicates) == len(seeds) else f" ({len(replicates)} seeds)"
    return f"[{low:+.4f}, {high:+.4f}]{suffix}"


def verdict_table(data: dict, metric: str) -> str:
    """One row per arm that has run: seeds, the mean metric, the paired difference to BCE with its
    95 % t-interval, Holm's p and interval, TOST, the two-level bootstrap, verdict, power note."""
    found = arm_verdicts(data, metric)
    rows = []
    base = _values(data, BASELINE, metric) if BASELINE in data["arms"] else {}
    if base:
        rows.append([data["arms"][BASELINE]["label"], str(len(base)), _fmt(float(np.mean(list(base.values()))), sign=False),
                     "baseline", "", "", "", "", "", "", ""])
    for name, v in found.items():
        t = v.test
        mean = float(np.mean(list(_values(data, name, metric).values())))
        rows.append([data["arms"][name]["label"], str(t.n), _fmt(mean, sign=False),
                     f"{_fmt(t.mean)} [{_fmt(t.low)}, {_fmt(t.high)}]", _fmt(v.p_holm, 3, sign=False),
                     f"[{_fmt(v.low_holm)}, {_fmt(v.high_holm)}]", _fmt(v.p_tost_holm, 3, sign=False),
                     _bootstrap(data, name, metric, t.seeds), f"**{v.verdict}**",
                     "–" if v.seeds_to_settle is None else str(v.seeds_to_settle),
                     _fmt(power(t.sd, t.n), 2, sign=False)])
    header = ["arm", "seeds", f"mean {METRIC_NAMES[metric]}", "paired Δ to BCE [95 % t]", "Holm p",
              "Δ at Holm's level", f"TOST ±{MARGIN:g} p (Holm)", "two-level bootstrap 95 %", "verdict",
              f"seeds to settle ±{SETTLE:g}", "power for 0.01 now"]
    return markdown_table(header, rows)


def summary_lines(data: dict) -> list[str]:
    """The two goals of issue 28, said plainly from the current seeds."""
    roc, pr = arm_verdicts(data, "roc_auc"), arm_verdicts(data, "pr_auc")
    if not roc:
        return ["No arm has a seed in common with BCE yet."]
    settled = [n for n, v in roc.items() if not math.isnan(v.test.sd) and v.test.high - v.test.low <= 2 * SETTLE]
    winners = [n for n in roc if n in pr and roc[n].low_holm > 0 and pr[n].low_holm > 0]
    lines = [f"- Arms settled to ±{SETTLE:g} ROC-AUC (95 % half-width): {len(settled)} of {len(roc)}"
             + (f" ({', '.join(settled)})." if settled else ".")]
    if winners:
        lines.append(f"- Beats BCE on clean-test ROC-AUC and PR-AUC with Holm intervals above 0: {', '.join(winners)}.")
    else:
        lines.append("- No method beats BCE on both clean-test ROC-AUC and PR-AUC with a Holm-corrected interval "
                     "above 0 at the seeds so far.")
    return lines


def _mean(values) -> float:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else math.nan


def _peak(seeds: list[dict]) -> str:
    peak, epochs = _mean(e.get("peak_epoch") for e in seeds), _mean(e.get("epochs") for e in seeds)
    return "–" if math.isnan(peak) else f"{peak:.1f} of {epochs:.0f}"


def diagnostics_table(data: dict) -> str:
    """Per arm: the selected epoch, where the selection signal peaks over the whole run (after the
    window: is BCE past its best?), the window-selected epoch's clean-test ROC-AUC difference to
    BCE (the secondary endpoint), and how far the last epoch fits the wrong training labels."""
    selected = arm_verdicts({**data, "arms": {n: {**e, "seeds": [{**x, "roc_auc": x.get("selected_roc_auc")}
                                                                  for x in e["seeds"]]}
                                              for n, e in data["arms"].items()}}, "roc_auc")
    rows = []
    for name, entry in data["arms"].items():
        seeds = entry["seeds"]
        if entry.get("skipped") or not seeds:
            continue
        last = [e.get("memorised", {}).get("last", {}) for e in seeds]
        v = selected.get(name)
        rows.append([entry["label"], f"{_mean(e['best_epoch'] for e in seeds):.1f}",
                     _peak(seeds),
                     "baseline" if name == BASELINE else ("–" if v is None else _fmt(v.test.mean)),
                     _fmt(_mean(m.get("missing_fitted") for m in last), 3, sign=False),
                     _fmt(_mean(m.get("spurious_fitted") for m in last), 3, sign=False),
                     _fmt(_mean(m.get("fit_clean_roc_auc") for m in last), 3, sign=False)])
    header = ["arm", "selected epoch (mean)", "selection signal's peak epoch (whole run)", "Δ ROC-AUC at the selected epoch", "missing tags fitted (last epoch)",
              "spurious tags fitted (last epoch)", "train-clip ROC-AUC vs clean labels (last)"]
    return markdown_table(header, rows)


def _cpu(entry: dict) -> dict[int, float]:
    return {e["seed"]: e["cpu_seconds"] for e in entry["seeds"] if e.get("cpu_seconds") is not None}


def compute_rows(data: dict) -> list[dict]:
    """Per arm that runs, and per out-of-fold teacher: CPU-seconds per seed so far, and the
    estimate of what the rest of :data:`PLANNED_SEEDS` seeds costs: the measured mean per run
    (all stages) times the seeds left; an arm never measured is estimated from BCE's CPU
    per run times its epochs (``stage_epochs``: an upper bound for stages on the verified subset)."""
    base = list(_cpu(data["arms"].get(BASELINE, {"seeds": []})).values())
    entries = [(e["label"], e) for e in data["arms"].values() if not e.get("skipped")]
    entries += [(f"teacher: {e['label']}", e) for e in data.get("teachers", {}).values()]
    rows = []
    for label, entry in entries:
        spent = _cpu(entry)
        left = max(0, PLANNED_SEEDS - len(entry["seeds"]))
        if spent:
            per_run, measured = float(np.mean(list(spent.values()))), True
        else:
            per_run = float(np.mean(base)) * sum(entry.get("stage_epochs", [1.0])) if base else math.nan
            measured = False
        rows.append({"label": label, "spent": spent, "per_run": per_run, "measured": measured, "left": left,
                     "left_cpu": left * per_run})
    return rows


def _timing(data: dict) -> str:
    """Compute spent (CPU-minutes per arm and seed) and the estimate of what is left."""
    rows = compute_rows(data)
    seeds = sorted({seed for row in rows for seed in row["spent"]})
    table = [[r["label"], *(f"{r['spent'][s] / 60:.1f}" if s in r["spent"] else "–" for s in seeds),
              f"{sum(r['spent'].values()) / 60:.1f}",
              ("" if r["measured"] else "est. ") + ("–" if math.isnan(r["per_run"]) else f"{r['per_run'] / 60:.1f}"),
              str(r["left"]), "–" if math.isnan(r["left_cpu"]) else f"{r['left_cpu'] / 3600:.1f}"] for r in rows]
    spent = sum(sum(r["spent"].values()) for r in rows)
    left = sum(r["left_cpu"] for r in rows if not math.isnan(r["left_cpu"]))
    runs_done = sum(len(r["spent"]) for r in rows)
    done = min((len(e["seeds"]) for e in data["arms"].values() if not e.get("skipped")), default=0)
    text = markdown_table(["arm", *(f"seed {s} CPU-min" for s in seeds), "CPU-min so far", "CPU-min per run",
                           "seeds left", "CPU-hours left"], table)
    return (text + f"\n\nSpent so far: {spent / 3600:.1f} CPU-hours in {runs_done} of {len(rows) * PLANNED_SEEDS} "
            f"runs ({done} of {PLANNED_SEEDS} seeds complete in every arm). Left, at the measured CPU-seconds per run: "
            f"{left / 3600:.1f} CPU-hours, about {left / 3600 / 2:.0f} hours of a 2-core machine with nothing else on "
            "it. *est.*: an arm not measured yet, at BCE's CPU per run times the arm's epochs (too high for the stages "
            "on the verified tracks and for fold teachers, which train on 80 % of the tracks; too low for the noisy "
            "student, whose teacher also scores the unlabeled batches). Runs go one at a time, one thread, at "
            "`nice -n 19` on a machine shared with other work: CPU time is the cost; the wall clock depends on the "
            "load.")


def teacher_costs(data: dict) -> str:
    """Per seed: the in-sample teacher's CPU time (the Balanced-Training arm's run) beside the
    out-of-fold teachers' (all K fold teachers)."""
    in_sample = _cpu(data["arms"].get("btrain", {"seeds": []}))
    rows = []
    for entry in data.get("teachers", {}).values():
        for seed, cpu in sorted(_cpu(entry).items()):
            one = in_sample.get(seed)
            rows.append([str(seed), "–" if one is None else f"{one / 60:.1f}", entry["label"], f"{cpu / 60:.1f}",
                         "–" if not one else f"{cpu / one:.2f}×"])
    if not rows:
        return "No out-of-fold teacher has run yet."
    return markdown_table(["seed", "in-sample teacher CPU-min", "out-of-fold teachers", "CPU-min (all folds)",
                           "ratio"], rows)


def _corpora(data: dict) -> str:
    rows = []
    for seed, record in sorted(data["corpora"].items(), key=lambda kv: int(kv[0])):
        neg = [r["err_neg"] for r in record.get("noise", [])]
        pos = [r["err_pos"] for r in record.get("noise", [])]
        if neg:
            rows.append([seed, f"{100 * min(neg):.1f}–{100 * max(neg):.1f}", f"{100 * min(pos):.1f}–{100 * max(pos):.1f}",
                         "–" if record.get("cpu_s") is None else f"{record['cpu_s']:.0f}",
                         "–" if record.get("wall_s") is None else f"{record['wall_s']:.0f}"])
    rows.append(["Lu et al. Table 1", "8.0–39.0", "18.0–44.0", "", ""])
    return markdown_table(["seed", "Err− % per tag (train)", "Err+ % per tag (train)", "CPU s to write",
                           "wall s to write"], rows)


def hyperparameters(data: dict) -> str:
    """Where the arms' Balanced-Masking settings come from (a JSON written before sweeps existed:
    the papers' values)."""
    note = data.get("hyperparameters", {}).get("note")
    return note or "the papers' values (percentile 80, η 0.999, β_max 0.8); no sweep has run."


def render(data: dict, sweep: dict | None = None) -> str:
    """evidence.md's text (``sweep``: evidence-sweep.json beside it, if any)."""
    p = data["protocol"]
    mt = p["mean_teacher"]
    sizes = p["sizes"]
    handoff = ("Won et al.'s handoff: the best model with SGD lr 1e-3, momentum 0.9, Nesterov, weight decay 1e-4"
               if p["after_window"] == "sgd" else "the restored Adam and its moments (Lu et al.)")
    parts = [
        "# Evidence: each method against BCE in the papers' regime (issue 28)", "",
        "Generated by `bench/evidence.py` from this folder's JSON (do not edit by hand).", "",
        f"**Corpus** (bench/evidence_corpus.py, redrawn per seed): {sizes['train']} training tracks of {p.get('seconds', 10):g} s "
        f"({round(100 * sizes['verified_train_fraction'])} % verified), {sizes['valid']} validation tracks "
        f"({sizes['verified_valid']} verified), {sizes['test']} test tracks scored against clean labels, "
        f"{sizes['unlabeled']} unlabeled tracks; 10 tags; audio-dependent label noise. Training draws a random 3 s "
        f"crop of each track every epoch; evaluation averages {p['max_chunks']} chunks spread over the track.",
        "",
        f"**Protocol** (Lu et al. §3.1): `shortres-tiny`, Adam lr {p['lr']:g}, weight decay {p['weight_decay']:g}, "
        f"batch {p['batch_size']}; the best epoch by {p['select']} validation ROC-AUC among the first {p['window']} "
        f"epochs, then {p['more']} more epochs from it with {handoff}; the figure is the mean clean-test metric of "
        f"the last {p['last']} epochs. Mean teacher in the paper's terms (40 warm-up epochs, T0 40,000 steps, η "
        f"0.999 of 140 epochs of 2,009 steps), mapped onto {p['epochs']} epochs: warm-up {mt['warmup_epochs']} "
        f"epochs, ramp {mt['ramp_epochs']:.2f} epochs, EMA window {mt['window_epochs']:.3f} epochs; β_max "
        f"{mt['beta_max']}, γ {mt['gamma']} (the papers' values; the swept ones below replace them where a sweep ran). "
        f"Balanced-Masking's percentile, EMA window and β_max: {hyperparameters(data)} Out-of-fold teacher: "
        "5 Balanced-Training fold teachers per seed (each trained without one fold of the training tracks, same "
        "protocol), each training track scored by the teacher that did not see it. Staged training: stage 1 on the verified tracks for the BCE arm's epochs, "
        "stage 2 on all tracks for 0.4 of them, stage 3 on the verified tracks for half of them (He et al.'s 2:2:1 "
        "split of steps would give stage 1 2.7 times BCE's epochs).", "",
        "**Statistics**: per seed, the arm minus BCE of the same seed and corpus; 95 % t-interval; Holm across the "
        f"arms (family per metric; the interval at each arm's Holm level); TOST at ±{MARGIN:g} (Holm); a two-level "
        "bootstrap (seeds, then test tracks, paired) as a check. Verdict: *helps* / *hurts* when Holm's p < 0.05, "
        f"else *equivalent within ±{MARGIN:g}* when TOST's Holm p < 0.05, else *not settled*. 'Seeds to settle': "
        f"seeds whose 95 % interval half-width reaches ±{SETTLE:g} at the observed paired spread.", "",
        "## Status", "", *summary_lines(data), "",
    ]
    for metric in ("roc_auc", "pr_auc"):
        parts += [f"## Clean-test {METRIC_NAMES[metric]}, mean of the last epochs", "", verdict_table(data, metric), ""]
    skipped = [[e["label"], e["skipped"]] for e in data["arms"].values() if e.get("skipped")]
    if skipped:
        parts += ["## Arms declared but not run yet", "", markdown_table(["arm", "why"], skipped), ""]
    parts += ["## Diagnostics", "", "Means over seeds. *Missing tags fitted*: truly present tags labelled absent on "
              "training tracks that the model scores below 0.5 (it reproduces the annotators' miss); *spurious*: "
              "labelled but absent tags scored above 0.5.", "", diagnostics_table(data), ""]
    parts += ["## Realised label noise per corpus", "", _corpora(data), "", "## Compute spent and left", "",
              _timing(data), "", "## Teachers' cost", "", teacher_costs(data), ""]
    parts += ["## Balanced-Masking's hyperparameter sweep", "", *report_section(sweep or {})]
    return "\n".join(parts)


def write_report(path: Path) -> Path:
    """Writes ``<stem>.md`` beside the JSON ``path``; returns its path."""
    path = Path(path)
    data = json.loads(path.read_text())
    target = path.with_suffix(".md")
    sweep = path.parent / SWEEP_FILE
    target.write_text(render(data, json.loads(sweep.read_text()) if sweep.is_file() else None))
    return target
