"""Classifiers from outside the toolkit: load, wrap, check.

- `load_external("pkg.mod:callable", weights=FILE)`: import the module, call
  the callable (a function or a class) with keyword arguments, check that it
  returns an `nn.Module`, then load a state dict from FILE with
  `torch.load(FILE, weights_only=True)`.
- `load_external("model.pt")`: a TorchScript module (`torch.jit.load`).
- `InputNormalized(model, mean, std)`: for a model that expects normalised
  input; the wrapper takes pixels in [0, 1] and normalises inside, so
  rotations and eps stay in pixel space.
- `check_classifier(model, images, num_classes)`: one forward pass on two
  images; the model must accept the data set's image shape and return
  (N, num_classes) logits.

Every failure is a `core.errors.UsageError` that names the argument.
"""
from __future__ import annotations

import hashlib
import importlib
import inspect
import os
import sys
import types
import typing
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from core.errors import UsageError
from empirics.attacks import model_device
from empirics.models.normalize import Normalize

TORCHSCRIPT_SUFFIXES = (".pt", ".pth", ".ts", ".torchscript", ".jit")


@dataclass(frozen=True)
class ModelSource:
    """Where a model came from, for the result file."""

    kind: str  # "callable" | "torchscript" | "run" | "module"
    spec: str
    weights: str | None = None
    weights_sha256: str | None = None
    kwargs: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "spec": self.spec, "weights": self.weights,
                "weights_sha256": self.weights_sha256, "kwargs": dict(self.kwargs)}


def sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return (text.splitlines()[0] if text else type(err).__name__)[:300]


def is_torchscript_spec(spec: str) -> bool:
    """A file path (existing, or ending in a TorchScript suffix) rather than MODULE:CALLABLE."""
    return Path(spec).is_file() or spec.lower().endswith(TORCHSCRIPT_SUFFIXES)


def _import(module_name: str):
    """The module, found as `python -m` would: the current folder first on
    the search path (a console script does not put it there)."""
    cwd = os.getcwd()
    added = cwd not in sys.path and "" not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(module_name)
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)


def resolve_callable(spec: str):
    """'pkg.mod:name' or 'pkg.mod:Outer.name' -> the object; the module is
    looked up in the current folder first, then on the Python path."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise UsageError(f"--model: expected PACKAGE.MODULE:CALLABLE or a TorchScript FILE.pt, "
                         f"got {spec!r}")
    try:
        module = _import(module_name)
    except ModuleNotFoundError as err:
        raise UsageError(f"--model: module {module_name!r} not found in the current folder or "
                         f"on the Python path ({_first_line(err)}); run from the folder that "
                         "holds it or add that folder to PYTHONPATH") from None
    except Exception as err:  # the user's module failed while importing
        raise UsageError(f"--model: importing module {module_name!r} failed: "
                         f"{type(err).__name__}: {_first_line(err)}") from None
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise UsageError(f"--model: callable {attr!r} not found in module {module_name!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise UsageError(f"--model: {spec!r} is not callable")
    return obj


def _state_dict(obj, path: str) -> Mapping[str, torch.Tensor]:
    """A state dict, or one nested under 'state_dict' / 'model' (a training checkpoint)."""
    if isinstance(obj, Mapping) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model"):
            inner = obj.get(key)
            if isinstance(inner, Mapping) and all(isinstance(v, torch.Tensor) for v in inner.values()):
                return inner
    raise UsageError(f"--weights: {path} does not hold a state dict (a mapping of names to tensors)")


def load_weights(model: nn.Module, path: str | os.PathLike) -> str:
    """Load the state dict in `path` (read with weights_only=True) into `model`;
    returns the file's sha256."""
    path = str(path)
    if not Path(path).is_file():
        raise UsageError(f"--weights: file {path} does not exist")
    try:
        with warnings.catch_warnings():  # notes on pickle protocols: the error says it all
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise UsageError(f"--weights: cannot read {path} as a state dict "
                         f"(torch.load weights_only=True): {_first_line(err)}") from None
    state = _state_dict(obj, path)
    try:
        model.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError, ValueError) as err:
        msg = " ".join(str(err).split())[:300]
        raise UsageError(f"--weights: {path} does not fit the model: {msg}") from None
    return sha256(path)


def _holds_state_dict(path: str) -> bool:
    """The file is a state dict (or a checkpoint holding one), read with weights_only=True."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _state_dict(torch.load(path, map_location="cpu", weights_only=True), path)
    except Exception:
        return False
    return True


def load_torchscript(path: str | os.PathLike) -> nn.Module:
    path = str(path)
    if not Path(path).is_file():
        raise UsageError(f"--model: file {path} does not exist")
    try:
        with warnings.catch_warnings():  # torch.jit.load's deprecation notice: not the user's error
            warnings.simplefilter("ignore")
            return torch.jit.load(path, map_location="cpu")
    except Exception as err:
        if _holds_state_dict(path):
            raise UsageError(f"--model: {path} holds a state dict (weights), not a TorchScript "
                             "module; pass --model MODULE:CALLABLE (the code that builds the "
                             f"network) and --weights {path}") from None
        raise UsageError(f"--model: {path} is not a TorchScript module "
                         f"(torch.jit.load: {_first_line(err)})") from None


def _hints(factory) -> dict:
    target = factory.__init__ if inspect.isclass(factory) else factory
    try:
        return typing.get_type_hints(target)
    except Exception:  # unresolvable string annotations: check names only
        return {}


def _fits(value, hint) -> bool:
    """`value` (read from JSON or a Python literal) is of the annotated type;
    unknown or generic annotations accept anything."""
    if hint is inspect.Parameter.empty or hint is typing.Any:
        return True
    origin = typing.get_origin(hint)
    if origin is typing.Union or (hasattr(types, "UnionType") and origin is types.UnionType):
        return any(_fits(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin in (tuple, list, Sequence) or hint in (tuple, list):
        return isinstance(value, (tuple, list))
    return True


def check_kwargs(factory, kwargs: Mapping, name: str, option: str = "--model-kwarg") -> None:
    """Every keyword is a parameter of `factory` (unless it takes **kwargs)
    and its value has the parameter's annotated type, or a UsageError
    naming `option`: `invariant_head=maybe` or `"False"` never reaches a
    constructor that would read a non-empty string as true."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # a builtin without a signature: nothing to check
        return
    open_ended = any(p.kind is p.VAR_KEYWORD for p in params.values())
    hints = _hints(factory)
    for key, value in kwargs.items():
        param = params.get(key)
        if param is None or param.kind in (param.POSITIONAL_ONLY, param.VAR_POSITIONAL):
            if open_ended:
                continue
            names = [k for k, p in params.items() if p.kind in (p.KEYWORD_ONLY,
                                                               p.POSITIONAL_OR_KEYWORD)]
            raise UsageError(f"{option} {key}: {name} takes no argument {key!r}; it takes "
                             f"{', '.join(names) or 'none'}")
        hint = hints.get(key, param.annotation)
        if isinstance(hint, str):  # an annotation that did not resolve
            continue
        if not _fits(value, hint):
            shown = getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
            raise UsageError(f"{option} {key}={value!r}: {name} expects {shown} "
                             "(JSON, or Python's True / False / None)")


def build_from_callable(spec: str, kwargs: Mapping | None = None) -> nn.Module:
    factory = resolve_callable(spec)
    check_kwargs(factory, dict(kwargs or {}), repr(spec))
    try:
        model = factory(**dict(kwargs or {}))
    except Exception as err:
        raise UsageError(f"--model: calling {spec!r} failed: {type(err).__name__}: "
                         f"{_first_line(err)}") from None
    if not isinstance(model, nn.Module):
        raise UsageError(f"--model: {spec!r} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def load_external(spec: str, weights: str | os.PathLike | None = None,
                  kwargs: Mapping | None = None) -> tuple[nn.Module, ModelSource]:
    """A model from 'pkg.mod:callable' (called with `kwargs`) or a TorchScript
    file, with `weights` (a state dict) loaded if given; on the CPU, eval mode."""
    if not isinstance(spec, str) or not spec.strip():
        raise UsageError("--model: empty model specification")
    if is_torchscript_spec(spec):
        if kwargs:
            raise UsageError("--model-kwarg applies to PACKAGE.MODULE:CALLABLE, not to a TorchScript file")
        model, kind = load_torchscript(spec), "torchscript"
    else:
        model, kind = build_from_callable(spec, kwargs), "callable"
    digest = load_weights(model, weights) if weights is not None else None
    source = ModelSource(kind, spec, None if weights is None else str(weights), digest,
                         dict(kwargs or {}))
    return model.eval(), source


def parse_stats(text: str | Sequence[float] | None, flag: str, channels: int) -> tuple[float, ...] | None:
    """'0.5' or '0.49,0.48,0.45' -> one float per channel (one value is repeated)."""
    if text is None:
        return None
    if isinstance(text, (int, float)):
        text = (text,)
    try:
        values = tuple(float(v) for v in (text.split(",") if isinstance(text, str) else text))
    except (TypeError, ValueError):
        raise UsageError(f"{flag}: expected a number or comma-separated numbers, got {text!r}") from None
    if len(values) == 1:
        values = values * channels
    if len(values) != channels:
        expected = "1 value" if channels == 1 else f"1 or {channels} values (one per channel)"
        raise UsageError(f"{flag}: expected {expected} for {channels}-channel images, "
                         f"got {len(values)}")
    if not all(torch.isfinite(torch.tensor(values))):
        raise UsageError(f"{flag}: values must be finite, got {text!r}")
    return values


class InputNormalized(nn.Module):
    """model((x - mean) / std): takes pixels in [0, 1], so attacks and
    rotations (and eps) stay in pixel space while `model` sees the
    normalised input it was trained on."""

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        try:
            self.normalize = Normalize(mean, std)
        except ValueError as err:
            raise UsageError(f"--input-mean/--input-std: {err}") from None
        self.model = model
        self.normalize.to(model_device(model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self.normalize(x))


def with_input_normalization(model: nn.Module, mean, std, channels: int) -> nn.Module:
    """`model` wrapped in `InputNormalized` when mean or std is given (the
    other defaults to 0 / 1), else `model` itself."""
    mean = parse_stats(mean, "--input-mean", channels)
    std = parse_stats(std, "--input-std", channels)
    if mean is None and std is None:
        return model
    mean = mean if mean is not None else (0.0,) * channels
    std = std if std is not None else (1.0,) * channels
    if any(not s > 0 for s in std):
        raise UsageError(f"--input-std: values must be positive, got {std}")
    return InputNormalized(model, mean, std)


@torch.no_grad()
def check_classifier(model: nn.Module, images: torch.Tensor, num_classes: int | None = None,
                     dataset: str = "the data set") -> int:
    """Raise UsageError unless `model` maps two of `images` to (2, num_classes)
    floating-point logits (any number of classes >= 2 when None); returns
    the number of classes."""
    x = images[:2].to(model_device(model))
    shape = "(N, " + ", ".join(str(s) for s in images.shape[1:]) + ")"
    training = model.training
    model.eval()
    try:
        out = model(x)
    except Exception as err:
        raise UsageError(f"--model rejects {dataset} images of shape {shape}: "
                         f"{type(err).__name__}: {_first_line(err)}") from None
    finally:
        model.train(training)
    want = "classes" if num_classes is None else str(num_classes)
    if not isinstance(out, torch.Tensor):
        raise UsageError(f"--model must return a tensor of (N, {want}) logits, "
                         f"got {type(out).__name__}")
    ok = out.dim() == 2 and out.shape[0] == len(x) and (
        out.shape[1] >= 2 if num_classes is None else out.shape[1] == num_classes)
    if not ok or not out.is_floating_point():
        raise UsageError(f"--model must return (N, {want}) floating-point logits for "
                         f"{dataset}, got shape {tuple(out.shape)} ({out.dtype}) for N = {len(x)}")
    if not bool(torch.isfinite(out).all()):
        raise UsageError("--model returns non-finite logits")
    return int(out.shape[1])
