"""`invrob {check,train,profile,figures,verify}`: one command for the toolkit.

- `invrob check`   = `python -m theory.check`
- `invrob train`   = `python -m empirics.train`
- `invrob profile` = `python -m empirics.profile RUN_DIR ...` for a run
  folder; with `--model` it evaluates any classifier (see `profile_parser`).
- `invrob figures` = `python -m paper_figures`
- `invrob verify`  = `python -m verify`

Each subcommand gets the remaining arguments unchanged and exits with the
status the module's own command line would. The modules are imported by
name when their subcommand runs, so one subcommand does not pay for the
imports of the others (`importlib` by module name).
"""
from __future__ import annotations

import importlib
from importlib import metadata
import shlex
import sys
from pathlib import Path

from core import validate
from core.errors import ArgumentParser, UsageError, exit_on_usage_error
from core.grids import parse_grid
from core.io import atomic_write_bytes, atomic_write_json
from empirics import autoattack
from empirics.data import DATASETS, SUBSET_SEED, load
from empirics.evaluate import evaluate
from empirics.external import check_classifier, load_external, with_input_normalization
from empirics.profile import load_run, record_of, test_points
from invrob.plot import profile_png

PROG = "invrob"
SUBCOMMANDS = {  # name -> (module with main(argv), what it is)
    "check": ("theory.check", "Theorem 1 checked on the paper's distribution (python -m theory.check)"),
    "train": ("empirics.train.cli", "train a model (python -m empirics.train)"),
    "profile": ("empirics.profile", "invariance and robustness profiles of a run folder "
                "(python -m empirics.profile), or of any model with --model"),
    "figures": ("paper_figures.__main__", "regenerate the paper's figures (python -m paper_figures)"),
    "verify": ("verify.__main__", "check every claim of the paper (python -m verify)"),
}
PROFILE_PROG = "invrob profile"


def _usage() -> str:
    lines = [f"usage: {PROG} {{{','.join(SUBCOMMANDS)}}} [ARGS ...]", "", "subcommands:"]
    lines += [f"  {name:<8} {what}" for name, (_, what) in SUBCOMMANDS.items()]
    lines += ["", f"`{PROG} SUBCOMMAND --help` shows each one's options."]
    return "\n".join(lines)


def _exit_code(result) -> int:
    return result if isinstance(result, int) and not isinstance(result, bool) else 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:
        print(_usage(), file=sys.stderr)
        return 2
    if argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if argv[0] == "--version":
        try:
            print(f"{PROG} {metadata.version('invrob')}")
        except metadata.PackageNotFoundError:
            print(f"{PROG} (not installed)")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"{PROG}: error: unknown subcommand {name!r}; choose from "
              f"{', '.join(SUBCOMMANDS)}", file=sys.stderr)
        return 2
    if name == "profile" and _wants_model_path(rest):
        return profile_main(rest)
    module = importlib.import_module(SUBCOMMANDS[name][0])
    return _exit_code(module.main(rest))


# ------------------------------------------------------------ invrob profile --model
# options only the --model form takes: given without --model, the error names --model
MODEL_OPTIONS = ("--model", "--weights", "--model-kwarg", "--attack", "--input-mean",
                 "--input-std", "--out", "--k", "--grid-points", "--interpolation", "--dataset",
                 "--download")


def _wants_model_path(argv: list[str]) -> bool:
    """No arguments, a bare --help (which documents both forms), or any
    option of the --model form."""
    return argv in ([], ["-h"], ["--help"]) or any(a.split("=", 1)[0] in MODEL_OPTIONS
                                                  for a in argv)


def profile_parser() -> ArgumentParser:
    p = ArgumentParser(prog=PROFILE_PROG, description=(
        "Evaluate any PyTorch classifier: robust accuracy under L-inf attacks (PGD, AutoAttack "
        "or both) over an eps grid, and the rotation profiles (random rotation, worst of k "
        "random rotations, a grid of angles) over theta. Writes one JSON (--out) and a PNG "
        "next to it. Without --model, `invrob profile RUN_DIR ...` is exactly "
        "`python -m empirics.profile RUN_DIR ...`."))
    p.add_argument("--model", metavar="SPEC", help="PACKAGE.MODULE:CALLABLE (a function or "
                   "class returning an nn.Module; the module is looked up in the current folder, "
                   "then on the Python path), a TorchScript FILE.pt, or a run folder of this "
                   "toolkit")
    p.add_argument("--weights", metavar="FILE", help="state dict to load into the model "
                   "(torch.load with weights_only=True); without it a CALLABLE's model is "
                   "evaluated as it builds itself (said on stderr)")
    p.add_argument("--model-kwarg", dest="model_kwargs", action="append", default=[],
                   metavar="KEY=VALUE", help="keyword argument for CALLABLE, VALUE read as JSON "
                   "or as Python's True / False / None (else a string), checked against the "
                   "callable's signature and annotations (e.g. num_classes=10); repeatable")
    p.add_argument("--dataset", default=None, help="mnist5k (default, offline), mnist, "
                   "fashion-mnist or cifar10 (default for a run folder: its data set)")
    p.add_argument("--data-dir", default=None, help="folder holding MNIST/, FashionMNIST/ or "
                   "cifar-10-batches-py/ (default ./data)")
    p.add_argument("--download", action="store_true", help="download the data set (needs internet)")
    p.add_argument("--input-mean", default=None, metavar="M[,M,...]", help="the model expects "
                   "(x - mean) / std input: the toolkit normalises inside a wrapper, eps stays in "
                   "pixel space; one value or one per channel")
    p.add_argument("--input-std", default=None, metavar="S[,S,...]", help="see --input-mean")
    p.add_argument("--attack", choices=("pgd", "autoattack", "both"), default="pgd",
                   help="pgd (default), autoattack (standard: APGD-CE, APGD-T, FAB-T, Square; "
                   "needs the autoattack extra) or both (each attack and the per-point worst case)")
    p.add_argument("--eps", default="0:0.3:0.05", help="L-inf radii in pixel space [0, 1]: "
                   "START:STOP:STEP or a comma list; numbers or fractions such as 8/255 "
                   "(default 0:0.3:0.05)")
    p.add_argument("--steps", type=int, default=40, help="PGD steps, at most "
                   f"{validate.MAX_ATTACK_STEPS:,} (default 40; step 2.5*eps/steps)")
    p.add_argument("--thetas", default="0:180:15", help="rotation budgets in degrees [0, 180] "
                   "(default 0:180:15)")
    p.add_argument("--k", type=int, default=10, help="random rotations per image for the "
                   f"worst-of-k attack, at most {validate.MAX_ROTATIONS} (default 10)")
    p.add_argument("--grid-points", type=int, default=31, help="angles of the grid attack in "
                   "[-theta, theta], odd so 0 is included, at most "
                   f"{validate.MAX_GRID_ANGLES:,} (one per 0.1 degree; default 31)")
    p.add_argument("--interpolation", choices=("nearest", "bilinear"), default="nearest",
                   help="rotation resampling (default nearest)")
    p.add_argument("--n-test", type=int, default=None, help="a stratified subset of N test "
                   f"images drawn with the fixed subset seed {SUBSET_SEED} (the same N always "
                   "gives the same images; their indices are in the JSON's test_points; "
                   "default: the whole test split)")
    p.add_argument("--seed", type=int, default=0, help="seed of the rotations and of AutoAttack, "
                   "in [0, 2^63) (default 0)")
    p.add_argument("--batch-size", type=int, default=500, help="images per forward pass, at "
                   f"most {validate.MAX_BATCH:,} (default 500)")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    p.add_argument("--out", default="evaluation.json", metavar="FILE.json",
                   help="result file (default evaluation.json); the PNG goes next to it")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def _load_model(args):
    """(model, model record, default data set)."""
    spec = args.model
    if not spec.strip():
        raise UsageError("--model is empty; give PACKAGE.MODULE:CALLABLE, a TorchScript FILE.pt "
                         "or a run folder")
    if Path(spec).is_dir():
        if args.weights is not None or args.model_kwargs:
            raise UsageError("--weights and --model-kwarg do not apply to a run folder")
        model, config, record = load_run(spec, "cpu")
        return model, record, config.dataset
    if args.weights is not None:
        validate.input_file(args.weights, "--weights")
    kwargs = dict(validate.keyword(t, "--model-kwarg") for t in args.model_kwargs)
    model, source = load_external(spec, args.weights, kwargs)
    return model, source.to_dict(), "mnist5k"


def _cell(est) -> str:
    return f"{est.value:7.4f} [{est.ci_low:.3f}, {est.ci_high:.3f}]"


def format_table(ev) -> str:
    """A readable table of an `Evaluation`."""
    names = list(ev.attacks) + (["worst_case"] if len(ev.attacks) > 1 else [])
    head = {"pgd": f"PGD-{ev.pgd_steps}", "autoattack": "AutoAttack", "worst_case": "worst case"}
    lines = [f"{ev.n} test images of {ev.dataset}; clean accuracy {_cell(ev.clean_accuracy)}",
             "", "robust accuracy [95% CI], L-inf, eps in pixel units",
             f"{'eps':>7}  " + "  ".join(f"{head[n]:>26}" for n in names)
             + (f"  {'PGD overestimate':>26}" if len(names) > 1 else "")]
    cols = [ev.robust_accuracy(n) for n in names] + ([ev.pgd_gap()] if len(names) > 1 else [])
    for j, eps in enumerate(ev.epsilons):
        lines.append(f"{eps:7.4g}  " + "  ".join(f"{_cell(c[j]):>26}" for c in cols))
    if ev.invariance is not None and ev.spatial is not None:
        lines += ["", "rotation profiles (accuracy [95% CI]; angles in [-theta, theta])",
                  f"{'theta':>7}  {'invariance, random':>26}  {'accuracy, random':>26}  "
                  f"{f'worst of {ev.spatial.k}':>26}  {f'grid of {ev.spatial.n_grid}':>26}"]
        for j, theta in enumerate(ev.invariance.thetas):
            lines.append(f"{theta:7g}  {_cell(ev.invariance.invariance[j]):>26}  "
                         f"{_cell(ev.invariance.accuracy[j]):>26}  "
                         f"{_cell(ev.spatial.worst_of_k_accuracy[j]):>26}  "
                         f"{_cell(ev.spatial.grid_accuracy[j]):>26}")
    return "\n".join(lines)


def _check_profile_args(args, argv: list[str]) -> tuple:
    """Every option of `invrob profile --model`, before any work: (eps grid,
    theta grid, JSON path, PNG path, device)."""
    if args.model is None:
        given = sorted({a.split("=", 1)[0] for a in argv} & set(MODEL_OPTIONS))
        raise UsageError("--model is required" + (f" with {', '.join(given)}" if given else "")
                         + "; give --model SPEC (any classifier) or `invrob profile RUN_DIR` "
                         "(a run folder of this toolkit)")
    epsilons = parse_grid(args.eps, "--eps", 0.0, 1.0)
    thetas = parse_grid(args.thetas, "--thetas", 0.0, 180.0)
    validate.count(args.steps, "--steps", 1, validate.MAX_ATTACK_STEPS)
    validate.count(args.k, "--k", 1, validate.MAX_ROTATIONS)
    validate.count(args.grid_points, "--grid-points", 1, validate.MAX_GRID_ANGLES)
    if args.grid_points % 2 == 0:
        raise UsageError(f"--grid-points must be odd (so 0 is on the grid), got {args.grid_points}")
    validate.count(args.batch_size, "--batch-size", 1, validate.MAX_BATCH)
    validate.seed(args.seed, "--seed")
    if args.n_test is not None:
        validate.count(args.n_test, "--n-test", high=validate.MAX_SAMPLES)
    out = validate.output_file(args.out, "--out")
    png = out.with_suffix(".png")
    if png == out:
        raise UsageError(f"--out {out}: give a file name ending in .json")
    validate.output_file(png, "--out")  # the PNG next to it, checked before any work
    device = validate.device(args.device)
    if args.data_dir is not None:
        (validate.output_dir if args.download else validate.folder_path)(args.data_dir,
                                                                          "--data-dir")
    if args.attack in ("autoattack", "both"):
        autoattack.require()  # one line telling how to install it, before any work
    return epsilons, thetas, out, png, device


def _input_note(record: dict) -> str:
    norm = record.get("input_normalization")
    if not norm:
        return "input: pixels in [0, 1]"
    fmt = lambda v: ",".join(f"{x:.4g}" for x in v)  # noqa: E731
    return f"input normalised inside: mean {fmt(norm['mean'])}, std {fmt(norm['std'])}"


def profile_main(argv: list[str]) -> int:
    """`invrob profile --model ...`: evaluate, write FILE.json and FILE.png."""
    if not argv:
        print(f"{PROFILE_PROG}: error: give RUN_DIR (a run folder of this toolkit) or --model "
              f"SPEC (any classifier); see `{PROFILE_PROG} --help`", file=sys.stderr)
        return 2
    args = profile_parser().parse_args(argv)
    with exit_on_usage_error(PROFILE_PROG):
        epsilons, thetas, out, png, device = _check_profile_args(args, argv)
        model, record, default_dataset = _load_model(args)
        dataset = args.dataset or default_dataset
        if dataset not in DATASETS:
            raise UsageError(f"--dataset {dataset!r} is unknown; choose from {', '.join(DATASETS)}")
        data, points = test_points(load(dataset, "test", args.data_dir, download=args.download),
                                   args.n_test)
        model = model.to(device)
        check_classifier(with_input_normalization(model, args.input_mean, args.input_std,
                                                  data.images.shape[1]),
                         data.images, DATASETS[dataset].num_classes, dataset)
        if record["kind"] == "callable" and args.weights is None:
            print(f"{PROFILE_PROG}: warning: no --weights: {record['spec']} is evaluated as it "
                  "builds itself (random weights unless it loads its own)", file=sys.stderr)
        ev = evaluate(model, data.images, data.labels, epsilons, attack=args.attack,
                      steps=args.steps, thetas=thetas, k=args.k, n_grid=args.grid_points,
                      seed=args.seed, num_classes=DATASETS[dataset].num_classes,
                      input_mean=args.input_mean, input_std=args.input_std,
                      batch_size=args.batch_size, interpolation=args.interpolation,
                      dataset=dataset, model_info=record,
                      command=f"{PROFILE_PROG} {shlex.join(argv)}".rstrip(),
                      progress=not args.quiet and sys.stderr.isatty())
        image = profile_png(ev, f"{record['spec']} on {dataset}; {_input_note(ev.model)}")
        atomic_write_json(out, record_of(ev, points))
        atomic_write_bytes(png, image)
    print(format_table(ev))
    print(f"wrote {out} and {png}")
    return 0
