"""Command line of the training loop: `python -m empirics.train --help`."""
from __future__ import annotations

import argparse
import os
from dataclasses import fields
from pathlib import Path
from typing import Any

from core import validate
from core.errors import ArgumentParser, exit_on_usage_error
from empirics.data import DATASETS
from empirics.models.registry import MODEL_NAMES
from empirics.train.config import DEFAULT_LR, TrainConfig, cusp_stages, parse_stages
from empirics.train.folder import CONFIG, TrainResult, check_run_folder, read_config
from empirics.train.loop import CUBLAS_WORKSPACE, train

# ---------------------------------------------------------------- command line
_DEFAULTS = {f.name: f.default for f in fields(TrainConfig) if f.name != "model_kwargs"}


def _model_kwarg(text: str) -> tuple[str, Any]:
    try:
        return validate.keyword(text, "--model-kwarg")
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}") from None


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _add_config_options(p: argparse.ArgumentParser) -> None:

    d = _DEFAULTS
    p.add_argument("--model", help=f"one of {', '.join(MODEL_NAMES)} (default {d['model']})")
    p.add_argument("--dataset", help=f"one of {', '.join(DATASETS)} (default {d['dataset']}: "
                   "5,000 real MNIST digits, offline)")
    p.add_argument("--epochs", type=int, help=f"number of epochs, at most "
                   f"{validate.MAX_EPOCHS:,} (default {d['epochs']})")
    p.add_argument("--batch-size", type=int, help=f"images per step, at most "
                   f"{validate.MAX_BATCH:,} (default {d['batch_size']})")
    p.add_argument("--optimizer", help=f"sgd or adam (default {d['optimizer']})")
    p.add_argument("--lr", type=float, help="learning rate (default 0.001 for adam, 0.1 for sgd); "
                   "with --curriculum cusp the rate of the first stage")
    p.add_argument("--momentum", type=float, help=f"sgd momentum (default {d['momentum']})")
    p.add_argument("--weight-decay", type=float, help=f"L2 weight decay (default {d['weight_decay']})")
    p.add_argument("--lr-milestones", type=_int_list,
                   help="epochs (counted from 0) at which lr is multiplied by --lr-gamma, e.g. 50,100")
    p.add_argument("--lr-gamma", type=float, help=f"lr factor per milestone (default {d['lr_gamma']})")
    p.add_argument("--train-rotation", type=float, help="rotate each training image by its own angle "
                   "uniform in [-THETA, THETA] degrees, THETA in [0, 180] (default 0)")
    p.add_argument("--adv-eps", type=validate.number, help="PGD adversarial training radius in "
                   "pixel space [0, 1], a number or a fraction such as 8/255, applied to the "
                   "rotated images (default 0: no attack)")
    p.add_argument("--adv-steps", type=int, help=f"PGD steps in training, at most "
                   f"{validate.MAX_ATTACK_STEPS:,} (default {d['adv_steps']})")
    p.add_argument("--adv-step-size", type=validate.number, help="PGD step size (default 2.5 * eps / steps)")
    p.add_argument("--no-adv-random-start", dest="adv_random_start", action="store_false",
                   help="start PGD at the image instead of a random point of the eps-ball")
    p.add_argument("--adv-warmup", type=float, metavar="EPOCHS",
                   help="ramp the training eps linearly from 0 over the first EPOCHS epochs "
                   "(fractions allowed; per step; default 0: full eps from the start)")
    p.add_argument("--lr-schedule", help="step (default: --lr-milestones) or cosine (every "
                   "step's rate scaled by 0.5 (1 + cos(pi t / T)) over the run's T steps)")
    p.add_argument("--robust-check", type=int, metavar="N",
                   help="after every epoch, PGD-10 accuracy at the training eps on N held-out "
                   "test images, recorded in metrics.json with any collapse of it "
                   "(catastrophic overfitting) (default 0: off)")
    p.add_argument("--curriculum", help="'cusp': the paper's CuSP schedule (rotation 120/150/180, "
                   "eps 2/4/8 /255, lr /10 at each stage) scaled to --epochs; or stages "
                   "EPOCHS:THETA:EPS:LR,... adding up to --epochs")
    p.add_argument("--interpolation", help="rotation resampling: nearest (default, as the "
                   "authors' PIL code) or bilinear")
    p.add_argument("--seed", type=int, help=f"seed of init, data order, angles, attacks, in [0, 2^63) "
                   f"(default {d['seed']})")
    p.add_argument("--data-dir", help="folder holding MNIST/, FashionMNIST/ or cifar-10-batches-py/ "
                   "(default ./data; not used by mnist5k)")
    p.add_argument("--train-subset", type=int, help="train on a stratified subset of N images")
    p.add_argument("--test-subset", type=int, help="report test accuracy on a stratified subset of N images")
    p.add_argument("--model-kwarg", dest="model_kwargs", type=_model_kwarg, action="append",
                   metavar="KEY=VALUE", help="extra model argument, e.g. invariant_head=true; VALUE read "
                   "as JSON or as Python's True / False / None and checked against the model's "
                   "signature (repeatable)")
    p.add_argument("--deterministic", action="store_true",
                   help="deterministic GPU kernels: torch.use_deterministic_algorithms, cuDNN "
                   "determinism, CUBLAS_WORKSPACE_CONFIG=:4096:8; on CUDA a resumed run then "
                   "equals an uninterrupted one bit for bit (slower); no effect on CPU results")
    p.add_argument("--amp", action="store_true",
                   help="bf16 autocast for the training forward pass (default float32; the "
                   "attacks stay float32); changes the weights, so the run's identity")
    p.add_argument("--random-crop", type=int, metavar="PAD",
                   help="zero-pad each training image by PAD pixels and crop it back at a random "
                   "offset (the paper's CIFAR-10 training: 4; default 0: no crop)")
    p.add_argument("--hflip", action="store_true",
                   help="mirror each training image left-right with probability 1/2 (the "
                   "paper's CIFAR-10 training)")


def parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m empirics.train", argument_default=argparse.SUPPRESS,
                       description="Train a model with rotation augmentation and/or PGD "
                       "adversarial training; writes config.json, checkpoint.pt and "
                       "metrics.json into --out after every epoch.")
    p.add_argument("--out", required=True, help="run folder to create (or resume)")
    _add_config_options(p)
    p.add_argument("--resume", action="store_true", default=False,
                   help="continue the run in --out from its last finished epoch (same result "
                   "as an uninterrupted run); options given must match the saved config")
    p.add_argument("--force", action="store_true", default=False, help="overwrite a run in --out")
    p.add_argument("--download", action="store_true", default=False,
                   help="download mnist / fashion-mnist / cifar10 into --data-dir (needs internet)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    p.add_argument("--quiet", action="store_true", default=False, help="no progress bars")
    return p


def config_from_args(args: argparse.Namespace, stored: dict | None = None) -> TrainConfig:
    """A TrainConfig from parsed options; unset options come from `stored`
    (the saved config of a run being resumed) or the TrainConfig defaults."""
    given = {k: v for k, v in vars(args).items() if k in _DEFAULTS or k == "model_kwargs"}
    curriculum = given.pop("curriculum", None)
    if "model_kwargs" in given:
        given["model_kwargs"] = tuple(given["model_kwargs"])
    base = dict(stored) if stored is not None else {}
    base.update(given)
    if curriculum is not None:
        epochs = base.get("epochs", _DEFAULTS["epochs"])
        lr = base.get("lr") or DEFAULT_LR[base.get("optimizer", _DEFAULTS["optimizer"])]
        base["curriculum"] = (cusp_stages(epochs, lr=lr) if curriculum == "cusp"
                              else parse_stages(curriculum))
    return TrainConfig.from_dict(base)


_SIZES = {"epochs": validate.MAX_EPOCHS, "adv_steps": validate.MAX_ATTACK_STEPS,
          "batch_size": validate.MAX_BATCH, "train_subset": validate.MAX_SAMPLES,
          "test_subset": validate.MAX_SAMPLES}


def check_args(args: argparse.Namespace):
    """Paths, device and sizes of the command line, before any work; the torch device."""
    validate.output_dir(args.out, "--out")
    if hasattr(args, "data_dir"):
        (validate.output_dir if args.download else validate.folder_path)(args.data_dir,
                                                                          "--data-dir")
    for name, high in _SIZES.items():
        if getattr(args, name, None) is not None:
            validate.count(getattr(args, name), f"--{name.replace('_', '-')}", 1, high)
    if getattr(args, "seed", None) is not None:
        validate.seed(args.seed, "--seed")
    check_run_folder(Path(args.out), "--out")
    return validate.device(args.device, "--device")


def main(argv: list[str] | None = None) -> TrainResult:
    args = parser().parse_args(argv)
    prog = "python -m empirics.train"
    with exit_on_usage_error(prog):
        args.device = check_args(args)
        stored = None
        if args.resume and (Path(args.out) / CONFIG).is_file():
            stored = read_config(args.out).to_dict()
        config = config_from_args(args, stored)
        if config.deterministic:  # before any CUDA work, so cuBLAS picks it up
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
        result = train(config, args.out, resume=args.resume, device=args.device,
                       progress=not args.quiet, force=args.force, download=args.download)
    last = result.epochs[-1]
    print(f"{result.run_dir}: {len(result.epochs)} epochs, test accuracy {last.test_accuracy:.4f}, "
          f"{last.images_per_second:.0f} train images/s")
    return result


if __name__ == "__main__":
    main()
