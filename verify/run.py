"""The verify pipeline: theory check, sweeps, every check, the report.

`run_verify(config)` returns the `CheckResult`s in report order; a check
whose inputs cannot be had (runs or measurements missing, a module failing)
becomes an ERROR row with the reason instead of stopping the others. Every
check reads stored records only (profiles and the measurements the
pipeline made beyond them), so a results folder without checkpoints gives
every verdict; what is missing, `pipeline.make` makes (unless --no-sweep).
"""
from __future__ import annotations

import sys
import time
import traceback
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from core.errors import UsageError
from pipeline import make
from pipeline.calibrate import resolution
from core.outcomes import unbits
from pipeline.experiments import (CHECK_RUN_SETS, COROLLARY_INTERIOR, COROLLARY_RAW,
                                  COROLLARY_THETAS, MNIST_FIGURES, MNIST_SHAPED, QUOTED,
                                  QUOTED_DATASETS, SCALES, attack_gap_plan, declared, figure,
                                  quoted_name, scale_label)
from pipeline.runstore import MissingRunError, RunStore, portable_path
from pipeline.sweep import RunOptions
from theory.result import TheoremCheck
from verify import checks, gather, stats
from verify.attack_gap import ATTACK_GAP_REF, attack_gap_results
from verify.result import CheckResult

CHECK_RUNS = CHECK_RUN_SETS  # declared runs only a check reads
COROLLARY_TOL = 1e-9  # perturbations "correspond" when they agree to this (float64)


READINGS = (
    "Claims (i), (ii): Spearman's rho between the training knob and each model's profile AUC "
    "(trapezoid area normalised by the axis range; robustness = PGD accuracy vs eps on "
    "unrotated test images, invariance = rate of unchanged predictions vs theta). 95 % "
    "percentile intervals from a paired bootstrap over test points (one resample shared by all "
    "models) and over training seeds where there are several. The effect is the AUC "
    "difference between the largest and the smallest knob value.",
    "Quoted (a): 'robustness drops by more than 50 % at eps = 0.1' read as accuracy(eps) < 0.5 "
    "x clean accuracy, i.e. fewer than half of the clean-correct test points survive PGD; "
    "quoted (b): PGD accuracy > 0.8 at eps = 0.3. Both with exact (Clopper-Pearson) intervals, "
    "under PGD-40 (step 2.5 eps / 40, no random start) in pixel units, and again with eps read "
    "in normalised units (eps_pixel = eps x 0.3081) as the authors' code effectively did.",
    "Theorem 1: a trained classifier refutes the bound only if its whole interval for "
    "Pr[f(rX)=Y] + c(p) Pr[f(X+A)=Y] lies above p / (2 (1 - p)); 'opposite sides' needs the "
    "r-augmented model's spatial accuracy above, and its adversarial accuracy below, the "
    "A-adversarial model's, with non-overlapping intervals.",
    "Corollary (Sec. 1.1): the same PGD (random start off, against clean predictions) on x "
    "and rot90(x), model in float64. An invariant model HOLDS when every test point gets the "
    "same outcome (so the rates are equal exactly); whether the perturbations themselves "
    "correspond (rotated back, to 1e-9) is reported next to it. For a StdCNN the claim is "
    "that equality is not guaranteed: HOLDS if the rate difference's interval excludes 0, "
    "INCONCLUSIVE if the rates agree within noise although the per-point correspondence "
    "breaks, FAILS if the attack commutes with the rotation.",
    "CuSP: paired bootstrap of CuSP minus baseline for clean, rotated (angles in +-180) and "
    "PGD accuracy (at CuSP's final training eps); HOLDS if not worse on rotated or PGD "
    "accuracy and better on at least one (interval excludes 0), FAILS if worse on one.",
)


@dataclass(frozen=True)
class VerifyConfig:
    """Everything one verify run depends on (parsed in `verify.__main__`)."""

    scale: str = "quick"
    dataset: str | None = None  # an MNIST-shaped data set replacing the scale's default
    store: str = "run_store"
    out: str = "reports"
    figures_dir: str = "paper_figures"
    jobs: int = 1
    data_dir: str | None = None
    sweep: bool = True
    channels_last: bool = False  # runs without an attack train channels-last (pipeline.sweep)
    n_resamples: int = 2000
    seed: int = 0

    def __post_init__(self):
        if self.scale not in SCALES:
            raise ValueError(f"`scale` must be one of {SCALES}, got {self.scale!r}.")
        if self.dataset is not None and self.dataset not in MNIST_SHAPED:
            raise ValueError(f"`dataset` must be one of {MNIST_SHAPED}, got {self.dataset!r}.")
        for name in ("jobs", "n_resamples"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {v!r}.")
        if self.n_resamples < 100:
            raise ValueError(f"`n_resamples` must be >= 100, got {self.n_resamples}.")

    @property
    def label(self) -> str:
        """The scale, with the data set when one replaces the default."""
        return scale_label(self.scale, self.dataset)

    @property
    def report_dir(self) -> Path:
        return Path(self.out) / self.label

    def declared(self, name: str) -> bool:
        return declared(name, self.scale)

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def say(message: str) -> None:
    """A progress line on stderr."""
    print(f"[verify {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def guarded(name: str, ref: str, claim: str, fn: Callable[[], tuple],
            notes: list | None = None) -> list[CheckResult]:
    """Run one check (returning one or more results); an exception becomes
    an ERROR row that says what went wrong."""
    start = time.perf_counter()
    try:
        out = fn()
    except Exception as err:  # noqa: BLE001 - every failure is reported, none hidden
        msg = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        if notes is not None and isinstance(err, MissingRunError):
            say(f"{name}: not made yet ({msg})")
            notes.append(f"{name}: not checked: records not made yet: {msg}")
            return []
        say(f"{name}: ERROR {msg}")
        if not isinstance(err, ValueError):
            traceback.print_exc(file=sys.stderr)
        return [CheckResult.error(name, ref, claim, msg)]
    out = [out] if isinstance(out, CheckResult) else list(out)
    say(f"{name}: " + ", ".join(f"{r.name} {r.verdict}" for r in out)
        + f" ({time.perf_counter() - start:.0f} s)")
    return out


# ------------------------------------------------------------ inputs
class Runs:
    """The finished runs of each declared figure, loaded on demand."""

    def __init__(self, config: VerifyConfig):
        self.config, self.store, self._cache = config, RunStore(config.store), {}

    def figure(self, name: str):
        return figure(name, self.config.scale, self.config.dataset)

    def records(self, name: str) -> list:
        """Every run of declaration `name` (`pipeline.make.records`)."""
        if name not in self._cache:
            self._cache[name] = make.records(self.figure(name), self.store)
        return self._cache[name]


def _kw(config: VerifyConfig) -> dict:
    return {"n_resamples": config.n_resamples, "seed": config.seed}


# ------------------------------------------------------------ the checks
CHANCE_MARGIN = 0.1  # a model within 0.1 of 1/num_classes clean accuracy learned ~nothing


def _chance_caveat(labels_acc: dict, num_classes: int = 10) -> str | None:
    low = [k for k, a in labels_acc.items() if a <= 1 / num_classes + CHANCE_MARGIN]
    if not low:
        return None
    return ("near-chance clean accuracy (" + ", ".join(f"{k}: {labels_acc[k]:.2f}" for k in low)
            + "): such a model predicts ~one class, so its profiles say little")


def _with_clean(results, sweep, config: VerifyConfig) -> tuple:
    """Add each model's clean accuracy (and a caveat for near-chance ones);
    robustness rows also get the trend of 1 - fooling rate (paper, Sec. 2)."""
    acc = {f"{x:g}": a for x, a in zip(sweep.x, sweep.clean_accuracy)}
    extra = {"clean_accuracy": acc}
    caveat = _chance_caveat(acc)
    if caveat:
        extra["caveat"] = caveat
    out = []
    for r in results:
        more = dict(extra)
        if r.name.endswith("_robustness") and "_relative_" not in r.name:
            t = stats.trend(sweep.x, sweep.unfooled_auc, **_kw(config))
            direction = 1 if r.details["direction"] == "rises" else -1
            more["unfooled_rho"] = {**t.rho.to_dict(), "verdict": stats.direction_verdict(
                t.rho.ci_low, t.rho.ci_high, direction)}
        out.append(replace(r, details={**r.details, **more}))
    return tuple(out)


SEED_RESAMPLES = 500  # bootstrap resamples of each one-seed verdict (fragility only)


def with_seed_verdicts(results, per_seed: dict) -> tuple:
    """Mark each result with its verdict on each training seed alone;
    'seed_fragile' when those verdicts disagree. per_seed: {seed: results
    in the same order as `results`}."""
    out = []
    for k, r in enumerate(results):
        verdicts = {str(seed): rs[k].verdict for seed, rs in per_seed.items()}
        fragile = len(set(verdicts.values())) > 1
        out.append(replace(r, details={**r.details, "seed_verdicts": verdicts,
                                       "seed_fragile": fragile}))
    return tuple(out)


def _auc_ranges(sweep, records) -> dict:
    """Which eps / theta range each AUC of a sweep covers, and how well each
    model's stored robustness curve is resolved by the grid."""
    rob = records[0].robustness[0.0]
    res = {}
    for r in records:
        prof = r.robustness[0.0]
        res[r.spec.key] = resolution(prof.epsilons, [e.value for e in prof.accuracy]).to_dict()
    return {"robustness_auc_eps": [rob.epsilons[0], rob.epsilons[-1]],
            "invariance_auc_theta": [records[0].invariance.thetas[0],
                                     records[0].invariance.thetas[-1]],
            "resolved_runs": sum(v["resolved"] for v in res.values()), "runs": len(res),
            "resolution": res}


def _trend_checks(runs: Runs, name: str, knob: str, check) -> tuple:
    """A claim's trend checks on all seeds (bootstrap over seeds and test
    points), each marked with the verdicts of every seed alone."""
    records = runs.records(name)
    sweep = gather.sweep_outcomes(records, knob)
    results = _with_clean(check(sweep, **_kw(runs.config)), sweep, runs.config)
    if len(sweep.seeds) > 1:
        one = {"n_resamples": SEED_RESAMPLES, "seed": runs.config.seed}
        per_seed = {seed: check(gather.one_seed(sweep, k), **one)
                    for k, seed in enumerate(sweep.seeds)}
        results = with_seed_verdicts(results, per_seed)
    ranges = _auc_ranges(sweep, records)
    return tuple(replace(r, details={**r.details, "auc_ranges": ranges}) for r in results)


def _relative(claim: str, model: str, x_name: str, direction: int):
    """The robustness trend with clean accuracy divided out (a row of its own)."""
    return lambda sw, **kw: (checks.relative_robustness(
        claim, model, sw.x, x_name, sw.robustness_auc, sw.clean_correct, direction,
        data=sw.keys, **kw),)


def claim_i_checks(runs: Runs, name: str, model: str) -> tuple:
    relative = _relative("i", model, "training rotation", -1)
    return _trend_checks(runs, name, "rotation", lambda sw, **kw: checks.claim_i(
        model, sw.x, sw.invariance_auc, sw.robustness_auc, data=sw.keys, **kw)
        + relative(sw, **kw))


def claim_ii_checks(runs: Runs) -> tuple:
    relative = _relative("ii", "LeNet", "PGD training eps", +1)
    return _trend_checks(runs, "fig5", "eps", lambda sw, **kw: checks.claim_ii(
        "LeNet", sw.x, sw.invariance_auc, sw.robustness_auc, data=sw.keys, **kw)
        + relative(sw, **kw))


def _stdcnn(runs: Runs, theta: float):
    found = gather.find(runs.records("fig1"), train_rotation=theta)
    if not found:
        raise UsageError(f"fig1 has no StdCNN trained at theta = {theta:g}")
    return found[0]


def quoted_checks(runs: Runs) -> list[CheckResult]:
    """(a) theta=180 at eps 0.1, (b) theta=60 at eps 0.3, each read in pixel
    and in normalised units (eps_pixel = eps * 0.3081), under the stored
    PGD-40 measurement, on the test points of every training seed pooled
    (and on each seed alone, for the seed-fragility mark)."""
    out = []
    std = checks.MNIST_STD
    for (theta, eps), which in zip(QUOTED, ("a", "b")):
        recs = gather.find(runs.records("fig1"), train_rotation=theta)
        if not recs:
            raise UsageError(f"fig1 has no StdCNN trained at theta = {theta:g}")
        readings = {"pixel": eps, "normalised": round(eps * std, 6)}
        correct, steps = [], set()  # per seed: (E, n)
        for rec in recs:
            result = gather.measurement(rec, quoted_name(theta))
            grid_eps, rows = gather.attacked_correct(result, "pgd")
            correct.append(rows)
            steps.add(int(result["attacks"]["pgd"]["steps"]))
        (pgd_steps,) = steps
        stored = recs[0].robustness[0.0]
        keys = [r.spec.key for r in recs]
        for reading, e_pix in readings.items():
            j = list(grid_eps).index(e_pix)
            extra = {"pgd_steps": pgd_steps, "seeds": [r.spec.train.seed for r in recs]}
            if any(abs(e - e_pix) < 1e-9 for e in stored.epsilons):
                extra[f"stored_profile_pgd{stored.steps}_accuracy"] = stored.at(e_pix).accuracy.value

            def judge(parts, data):
                clean = np.concatenate([c[0] for c in parts])
                at = np.concatenate([c[j] for c in parts])
                if which == "a":
                    return checks.half_robustness_check(clean, at, eps, reading, data=data)
                return checks.accuracy_above_check(at, eps, reading, data=data)

            r = judge(correct, keys)
            r = replace(r, details={**r.details, **extra})
            if len(recs) > 1:
                per_seed = {rec.spec.train.seed: (judge([c], [rec.spec.key]),)
                            for rec, c in zip(recs, correct)}
                r = with_seed_verdicts((r,), per_seed)[0]
            out.append(r)
    return out


def attack_gap_checks(runs: Runs) -> list[CheckResult]:
    """AutoAttack (standard) against the PGD profiles of the seed-0 StdCNNs
    trained at theta 0 and 180 (quick: 180 alone), as measured with those
    runs: the gap per eps and a verdict on whether the paper-style PGD
    profiles can be trusted here."""
    thetas = attack_gap_plan(runs.config.scale).thetas
    return attack_gap_results([_stdcnn(runs, theta) for theta in thetas])


def theorem_checks(result: TheoremCheck) -> tuple:
    """Theorem 1 on the six trained classifiers of a typed check result."""
    data = [result.label]
    bound_r = checks.theorem_bound_check(result.trained_lhs(), result.rhs, result.config.p,
                                         data=data)
    sides = checks.theorem_sides_check(result.trained_spatial(), result.trained_adversarial(),
                                       result.side_pairs, data=data)
    return bound_r, sides


def _by_seed(records) -> dict:
    return {r.spec.train.seed: r for r in records}


def curriculum_checks(runs: Runs) -> list[CheckResult]:
    """CuSP against every fixed-(theta, eps) run of the curriculum figure,
    paired by training seed where several seeds exist."""
    recs = runs.records("curriculum")
    cusp = _by_seed(r for r in recs if r.spec.train.curriculum is not None)
    fig = runs.figure("curriculum")
    groups = {}
    for r in recs:
        if r.spec.train.curriculum is None:
            groups.setdefault(fig.label(r.spec), []).append(r)
    if not cusp or not groups:
        raise ValueError("the curriculum figure needs a CuSP run and at least one fixed run")
    final = next(iter(cusp.values())).spec.train.curriculum[-1]
    out = []
    for label, members in groups.items():
        base = _by_seed(members)
        seeds = sorted(set(cusp) & set(base))
        if not seeds:
            raise ValueError(f"no training seed shared by CuSP and {label}")
        mine = [gather.curriculum_outcomes(cusp[s], final.eps) for s in seeds]
        read = mine[0][1]
        theirs = [gather.curriculum_outcomes(base[s], final.eps, read["theta"])[0] for s in seeds]
        stack = {m: (np.stack([o[m] for o, _ in mine]), np.stack([o[m] for o in theirs]))
                 for m in checks.CURRICULUM_METRICS}  # each (S, n)
        settings = (f"rotated: test angles in +-{read['theta']:g} deg; PGD at grid eps "
                    f"{read['eps']:g} (CuSP's final eps {final.eps:.4f}); seeds {seeds}")
        name = label.replace("°", "").replace(",", "").replace("ε=", "eps").replace(" ", "_")
        t = members[0].spec.train
        is_final = abs(t.train_rotation - final.theta) < 1e-9 and abs(t.adv_eps - final.eps) < 1e-9
        claim = (f"CuSP beats training at its final (theta, eps) = ({final.theta:g}, "
                 f"{final.eps:g}) alone on (rotated, PGD) accuracy" if is_final else
                 f"extra comparison: CuSP vs {label} on (rotated, PGD) accuracy")
        r = checks.curriculum_check(
            name, {m: a for m, (a, _) in stack.items()}, {m: b for m, (_, b) in stack.items()},
            data=[cusp[s].spec.key for s in seeds] + [base[s].spec.key for s in seeds],
            settings=settings, claim=claim, **_kw(runs.config))
        if len(seeds) > 1:
            per_seed = {seed: (checks.curriculum_check(
                name, {m: a[k:k + 1] for m, (a, _) in stack.items()},
                {m: b[k:k + 1] for m, (_, b) in stack.items()}, settings=settings, claim=claim,
                n_resamples=SEED_RESAMPLES, seed=runs.config.seed),)
                for k, seed in enumerate(seeds)}
            r = with_seed_verdicts((r,), per_seed)[0]
        clean = r.details["metrics"]["clean"]
        caveat = _chance_caveat({"CuSP": clean["cusp"], label: clean["baseline"]})
        out.append(replace(r, details={**r.details, "caveat": caveat}) if caveat else r)
    out.sort(key=lambda r: not r.claim.startswith("CuSP beats"))  # the paper's claim first
    return out


def invariant_p4cnn(runs: Runs):
    """The declared P4CNN with the invariant head (`pipeline.experiments`
    "corollary") and a sentence saying which run it is."""
    rec = runs.records("corollary")[0]
    t = rec.spec.train
    acc = rec.metrics.get("epochs", [{}])[-1].get("test_accuracy", float("nan"))
    return rec, (f"P4CNN invariant head trained {t.epochs} epochs (Adam {t.lr:g}), declared run "
                 f"{rec.spec.key} (test accuracy {acc:.3f})")


ROT90_DETAILS = ("eps", "steps", "quarter_turns", "dtype", "logit_gap", "attack")


def corollary_checks(runs: Runs) -> list[CheckResult]:
    """Sec. 1.1: PGD (no random start) on x and rot90(x), float64, as
    measured with each run (the same test images for every model)."""
    cfg = runs.config
    std = {theta: _stdcnn(runs, theta) for theta in COROLLARY_THETAS}  # fig1 first: cheap to miss
    p4, source = invariant_p4cnn(runs)
    cases = [("p4cnn_invariant_head", "P4CNN, invariant head, raw test images", p4, COROLLARY_RAW,
              True, source, "raw test images"),
             ("p4cnn_invariant_head_interior", "P4CNN, invariant head, interior images", p4,
              COROLLARY_INTERIOR, True, source,
              "test images mapped into [0.25, 0.75] + noise of +-1/255: no exactly tied "
              "pixels and the [0, 1] clamp never binds")]
    for theta, rec in std.items():
        cases.append((f"stdcnn_theta{theta:g}", f"StdCNN trained at +-{theta:g} deg", rec,
                      COROLLARY_RAW, False, f"StdCNN trained at +-{theta:g} deg, run {rec.spec.key}",
                      "raw test images"))
    out = []
    for name, label, rec, measured, invariant, src, what in cases:
        o = gather.measurement(rec, measured)
        info = {**{k: o[k] for k in ROT90_DETAILS}, "model_source": src, "images": what}
        if invariant and o["max_gap"] > COROLLARY_TOL:
            info["caveat"] = (f"the logits of x and rot90(x) agree to {o['logit_gap']:.0e} but the "
                              f"PGD perturbations differ by up to {o['max_gap']:.3f}: a max over "
                              "values tied in exact arithmetic (black background, pixels clamped "
                              "at 0) is broken differently by rounding for x and rot90(x), so the "
                              "gradient and the sign step go elsewhere; compare the interior row")
        out.append(checks.corollary_check(name, np.array(unbits(o["fooled"])),
                                          np.array(unbits(o["fooled_rot"])), o["max_gap"],
                                          invariant, tol=COROLLARY_TOL, details=info, data=[src],
                                          label=label, **_kw(cfg)))
    return out


# ------------------------------------------------------------ the pipeline
def theory_result(config: VerifyConfig) -> TheoremCheck:
    """The Theorem 1 check as the theorem1 declaration states it at this
    scale, from the run store (`pipeline.make` runs it there if absent)."""
    fig, store = figure("theorem1", config.scale, config.dataset), RunStore(config.store)
    if config.sweep:
        make.ensure([fig], store, options=RunOptions(progress=sys.stderr.isatty()))
    return make.theorem_result(fig, store)


def stale_figures(config: VerifyConfig) -> list[str]:
    """Notes on the figures of FIGURES/SCALE that were not drawn from the
    records the checks read (verify never draws; `python -m paper_figures all` does)."""
    store, out, notes = RunStore(config.store), Path(config.figures_dir) / config.label, []
    for name in (*MNIST_FIGURES, "theorem1"):
        if not config.declared(name):
            continue
        fig = figure(name, config.scale, config.dataset)
        if (out / f"{name}.png").is_file() and not make.is_current(fig, store, out / f"{name}.json"):
            notes.append(f"{name}: the figure in {out} was drawn from other records than these "
                         f"checks read; redraw it with `python -m paper_figures all --scale "
                         f"{config.scale}" + (f" --dataset {config.dataset}`" if config.dataset
                                              else "`"))
    return notes


def make_missing(config: VerifyConfig) -> dict:
    """Ask the pipeline for every run and measurement the checks read
    (`pipeline.make.ready`, then `ensure`: it trains, profiles and measures
    what the store lacks). Returns {declaration: "ready" | "skipped: why"}
    for the declarations this scale has."""
    names = [n for n in (*MNIST_FIGURES, *CHECK_RUNS) if config.declared(n)]
    figs, skipped = make.ready(names, config.scale, config.dataset, config.data_dir)
    make.ensure(figs, RunStore(config.store), config.jobs,
                options=RunOptions(config.data_dir, progress=sys.stderr.isatty(),
                                   channels_last=config.channels_last))
    return {n: skipped.get(n, "ready") for n in names}


def _filling(runs: Runs) -> bool:
    """Whether the store holds some finished run of this scale's declarations
    (a sweep in progress), rather than none (the wrong folder, or nothing run)."""
    if not hasattr(runs, "_filling"):
        names = [n for n in MNIST_FIGURES + CHECK_RUNS if runs.config.declared(n)]
        runs._filling = any(runs.store.is_done(r) for n in names for r in runs.figure(n).runs)
    return runs._filling


def _unfinished(runs: Runs, needs) -> str | None:
    """Why a check cannot run yet from a records folder that a sweep is still
    filling (--no-sweep): which declarations miss runs, and how to go on."""
    if not _filling(runs):
        return None  # an empty store: each check says what is missing and how to make it
    short = []
    for name in needs:
        if name == "theorem1":
            continue
        fig = runs.figure(name)
        lacking = len(runs.store.missing(fig.runs))
        if lacking:
            short.append(f"{lacking} of {len(fig.runs)} {name} runs")
    if not short:
        return None
    return (f"runs not made yet: {', '.join(short)} are not in {portable_path(runs.store.root)} "
            "(a sweep in progress; `python -m paper_figures run ... --results FOLDER` continues "
            "it)")


def training_notes(runs: Runs) -> list[str]:
    """What the training records say of adversarial training: every run whose
    held-out robust accuracy collapsed (catastrophic overfitting, stored by the
    trainer as metrics.json["robust_collapse"]), and per declaration the
    range of the last epoch's held-out PGD accuracy at the training eps."""
    notes = []
    for name in (*MNIST_FIGURES, *CHECK_RUNS):
        if not runs.config.declared(name):
            continue
        try:
            records = runs.records(name)
        except (MissingRunError, UsageError):
            continue
        checked = []
        for rec in records:
            collapse = rec.metrics.get("robust_collapse")
            if collapse:
                notes.append(f"{name}: run {rec.spec.key} ({rec.spec.describe()}): held-out PGD "
                             f"accuracy at eps {collapse['eps']:g} collapsed at epoch "
                             f"{collapse['epoch']} to {collapse['robust_accuracy']:.3f} (best "
                             f"before {collapse['best_before']:.3f}): catastrophic overfitting")
            last = (rec.metrics.get("epochs") or [{}])[-1]
            if last.get("robust_accuracy") is not None:
                checked.append(last["robust_accuracy"])
        if checked:
            collapsed = sum(bool(r.metrics.get("robust_collapse")) for r in records)
            notes.append(f"{name}: held-out PGD accuracy at the training eps after the last "
                         f"epoch: {min(checked):.3f} to {max(checked):.3f} over {len(checked)} "
                         f"adversarially trained runs; {collapsed} collapsed")
    return notes


def run_verify(config: VerifyConfig) -> tuple[list[CheckResult], list[str]]:
    """Every check, in report order, and notes on steps that failed."""
    notes, results = [], []
    say("1/4 Theorem 1 check (theory.check) ...")
    theory = {}
    results_t = guarded("theorem1", checks.THEOREM_REF, "Theorem 1 on learned classifiers",
                        lambda: theorem_checks(theory.setdefault("r", theory_result(config))))
    if config.sweep:
        say(f"2/4 sweeps for {', '.join(MNIST_FIGURES + CHECK_RUNS)} at scale {config.scale} "
            f"(reusing {config.store}) ...")
        try:
            status = make_missing(config)
            say("runs: " + ", ".join(f"{n} {w}" for n, w in status.items()))
            notes += [f"{name}: {what}" for name, what in status.items() if what.startswith("skip")]
        except Exception as err:  # noqa: BLE001 - the checks say what is missing
            notes.append(f"the sweep step failed ({type(err).__name__}: {err}); checks use "
                         "what the run store holds")
            say(f"sweeps: ERROR {type(err).__name__}: {err}")
    else:
        say("2/4 sweeps skipped (--no-sweep): using the run store as it is")
    notes += stale_figures(config)
    say("3/4 checks ...")
    runs = Runs(config)
    plan = (  # (name, paper reference, claim, the declarations it reads, the check)
        ("claim_i_stdcnn", checks.CLAIM_I_REF, "claim (i), StdCNN", ("fig1",),
         lambda: claim_i_checks(runs, "fig1", "StdCNN")),
        ("claim_i_p4cnn", checks.CLAIM_I_REF, "claim (i), P4CNN", ("fig3",),
         lambda: claim_i_checks(runs, "fig3", "P4CNN")),
        ("claim_ii_lenet", checks.CLAIM_II_REF, "claim (ii), LeNet", ("fig5",),
         lambda: claim_ii_checks(runs)),
        ("quoted", checks.QUOTED_REF, "quoted numbers of Sec. 2.1", ("fig1",),
         lambda: quoted_checks(runs)),
        ("attack_gap", ATTACK_GAP_REF, "PGD profiles vs AutoAttack", ("fig1",),
         lambda: attack_gap_checks(runs)),
        ("theorem1", None, None, ("theorem1",), None),  # run first, above
        ("corollary", checks.COROLLARY_REF, "Sec. 1.1 corollary", ("fig1", "corollary"),
         lambda: corollary_checks(runs)),
        ("curriculum", checks.CURRICULUM_REF, "CuSP vs fixed training", ("curriculum",),
         lambda: curriculum_checks(runs)),
    )
    dataset = runs.figure("fig1").dataset
    not_here = {"quoted": None if dataset in QUOTED_DATASETS else
                f"the paper quotes these numbers for MNIST, not for {dataset}"}
    for name, ref, claim, needs, fn in plan:
        missing = [n for n in needs if not config.declared(n)]
        if missing:
            not_here[name] = f"scale {config.scale} declares no {', '.join(missing)}"
        elif not config.sweep and not not_here.get(name):
            not_here[name] = _unfinished(runs, needs)
        if not_here.get(name):
            notes.append(f"{name}: not checked: {not_here[name]}")
        elif fn is None:
            results += results_t
        else:  # a records folder a sweep is filling: what it lacks yet is a note
            waiting = notes if not config.sweep and _filling(runs) else None
            results += guarded(name, ref, claim, fn, waiting)
    return results, notes + training_notes(runs)
