"""The `invrob` command: subcommands dispatch to today's modules, and
`invrob profile --model` evaluates a torchvision ResNet built from
PACKAGE.MODULE:CALLABLE, a TorchScript file and a model that expects
normalised input; bad input is one line and exit 2, with no file written."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from empirics import profile as prof
from empirics import train as tr
from empirics.data import load
from invrob import cli

ROOT = Path(__file__).resolve().parents[1]
TINY_TRAIN = ["--epochs", "1", "--train-subset", "100", "--test-subset", "100",
              "--batch-size", "50", "--quiet"]
# a small, fast evaluation: 12 test images, two eps, two thetas, few rotations
FAST = ["--n-test", "12", "--eps", "0,0.1", "--steps", "2", "--thetas", "0,45", "--k", "3",
        "--grid-points", "5", "--quiet"]

MODELS = '''
import torch
import torchvision
from torch import nn


def resnet18_1ch(num_classes=10):
    """torchvision's ResNet-18 for 1-channel 28x28 digits."""
    torch.manual_seed(0)
    m = torchvision.models.resnet18(num_classes=num_classes)
    m.conv1 = nn.Conv2d(1, 64, kernel_size=3, stride=1, padding=1, bias=False)
    m.maxpool = nn.Identity()
    return m


class Tiny(nn.Module):
    """A small CNN that expects input normalised by mean 0.1307, std 0.3081."""

    def __init__(self, classes=10):
        super().__init__()
        torch.manual_seed(1)
        self.body = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(4),
                                  nn.Flatten(), nn.Linear(8 * 7 * 7, classes))

    def forward(self, x):
        return self.body(x)


def not_a_module():
    return 42


def switched(invariant: bool = False, width: int = 8) -> nn.Module:
    """A Tiny whose keyword arguments are annotated."""
    return Tiny()


def broken():
    raise RuntimeError("no weights here")


NOT_CALLABLE = 3
'''


def run(argv, capsys):
    """(exit status, stdout, stderr) of `invrob ARGV` in process."""
    try:
        code = cli.main(argv)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def models(tmp_path, monkeypatch):
    """An importable module `invrob_test_models` in tmp_path."""
    (tmp_path / "invrob_test_models.py").write_text(MODELS)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("invrob_test_models", None)
    yield tmp_path
    sys.modules.pop("invrob_test_models", None)


def predictions(model, images):
    with torch.no_grad():
        return model.eval()(images).argmax(1)


def test_help_lists_every_subcommand(capsys):
    code, out, _ = run(["--help"], capsys)
    assert code == 0
    for name in ("check", "train", "profile", "figures", "verify"):
        assert name in out
    with pytest.raises(SystemExit) as exc:
        cli.main(["profile", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--model" in out and "--attack" in out and "empirics.profile" in out


def test_unknown_subcommand_is_one_line_exit_2(capsys):
    code, _, err = run(["frobnicate"], capsys)
    assert code == 2 and err.count("\n") == 1 and "frobnicate" in err


@pytest.mark.parametrize("argv,prog,needle", [
    (["check", "--p", "nan"], "python -m theory.check", "--p"),
    (["train", "--out", "{tmp}/r", "--epochs", "-1", "--quiet"], "python -m empirics.train", "--epochs"),
    (["profile", "{tmp}/nowhere"], "python -m empirics.profile", "nowhere"),
    (["figures", "plot", "nofig"], "python -m paper_figures", "nofig"),
    (["verify", "--scale", "huge"], "python -m verify", "--scale"),
])
def test_subcommands_are_todays_commands(argv, prog, needle, tmp_path, capsys):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code, _, err = run(argv, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error:") and needle in lines[0]


@pytest.mark.slow
def test_profile_of_a_run_folder_is_empirics_profile(tmp_path, capsys):
    run_dir = tmp_path / "run"
    tr.main(["--out", str(run_dir), *TINY_TRAIN])
    capsys.readouterr()
    args = ["--thetas", "0:90:45", "--eps", "0,0.1", "--steps", "2", "--n-test", "40", "--quiet"]
    prof.main([str(run_dir), *args])
    want_out = capsys.readouterr().out
    want = json.loads((run_dir / "profile.json").read_text())
    (run_dir / "profile.json").unlink()
    code, out, _ = run(["profile", str(run_dir), *args], capsys)
    assert code == 0 and out == want_out
    got = json.loads((run_dir / "profile.json").read_text())
    for record in (got, want):
        record.pop("provenance")
    assert got == want


@pytest.mark.slow
def test_profile_a_torchvision_resnet_built_from_model(models, tmp_path, capsys):
    import invrob_test_models as m

    ref = m.resnet18_1ch()
    torch.manual_seed(5)  # weights that differ from the callable's own init
    for p in ref.parameters():
        p.data.normal_(0, 0.05)
    torch.save(ref.state_dict(), tmp_path / "w.pt")
    out = tmp_path / "res" / "r18.json"
    code, stdout, err = run(["profile", "--model", "invrob_test_models:resnet18_1ch",
                             "--weights", str(tmp_path / "w.pt"), "--dataset", "mnist5k",
                             "--attack", "pgd", "--out", str(out), *FAST], capsys)
    assert code == 0, err
    d = json.loads(out.read_text())
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert d["threat_model"] == "Linf" and d["dataset"] == "mnist5k" and d["n_examples"] == 12
    assert d["model"]["kind"] == "callable" and d["model"]["spec"] == "invrob_test_models:resnet18_1ch"
    assert d["model"]["weights_sha256"] and d["model"]["class"] == "ResNet"
    assert d["command"].startswith("invrob profile --model invrob_test_models:resnet18_1ch")
    # the per-point clean outcomes are the loaded weights' own predictions
    test = load("mnist5k", "test").subset(12, seed=0)
    clean = predictions(ref, test.images) == test.labels
    assert d["per_point"]["clean_correct"] == "".join("1" if c else "0" for c in clean.tolist())
    spatial = d["rotation"]["spatial"]
    for t in range(2):  # the grid holds angle 0: never above clean, per point
        assert all(g <= c for g, c in zip(spatial["grid"][t], d["per_point"]["clean_correct"]))
    assert "robust accuracy" in stdout and str(out) in stdout


def test_profile_a_torchscript_file(tmp_path, capsys, models):
    import invrob_test_models as m

    net = m.Tiny().eval()
    path = tmp_path / "tiny.pt"
    torch.jit.script(net).save(str(path))
    out = tmp_path / "ts.json"
    code, _, err = run(["profile", "--model", str(path), "--out", str(out), *FAST], capsys)
    assert code == 0, err
    d = json.loads(out.read_text())
    assert d["model"]["kind"] == "torchscript"
    full = load("mnist5k", "test")
    assert d["test_points"] == {"split": "test", "n": 12, "of": len(full), "subset_seed": 0,
                                "indices": full.subset_indices(12, 0).tolist()}
    assert "warning" not in err  # a TorchScript file carries its weights
    test = load("mnist5k", "test").subset(12, seed=0)
    clean = predictions(net, test.images) == test.labels
    assert d["per_point"]["clean_correct"] == "".join("1" if c else "0" for c in clean.tolist())


def test_profile_a_model_that_expects_normalised_input(tmp_path, capsys, models):
    import invrob_test_models as m

    out = tmp_path / "norm.json"
    code, _, err = run(["profile", "--model", "invrob_test_models:Tiny", "--input-mean",
                        "0.1307", "--input-std", "0.3081", "--out", str(out), *FAST], capsys)
    assert code == 0, err
    d = json.loads(out.read_text())
    assert d["model"]["input_normalization"]["mean"] == pytest.approx([0.1307])
    test = load("mnist5k", "test").subset(12, seed=0)
    net = m.Tiny().eval()
    clean = predictions(net, (test.images - 0.1307) / 0.3081) == test.labels
    assert d["per_point"]["clean_correct"] == "".join("1" if c else "0" for c in clean.tolist())
    assert d["eps"] == [0.0, 0.1]  # eps stays in pixel units


def _bad_weights(tmp_path):
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "bad.pt")
    return str(tmp_path / "bad.pt")


def _state_dict_file(tmp_path):
    import invrob_test_models as m

    torch.save(m.Tiny().state_dict(), tmp_path / "tiny_weights.pt")
    return str(tmp_path / "tiny_weights.pt")


def _wrong_shape_script(tmp_path):
    torch.jit.script(nn.Sequential(nn.Flatten(), nn.Linear(784, 7))).save(str(tmp_path / "seven.pt"))
    return str(tmp_path / "seven.pt")


@pytest.mark.parametrize("make_argv,needle", [
    (lambda t: ["--model", "no_such_module_x:f"], "module 'no_such_module_x' not found"),
    (lambda t: ["--model", "invrob_test_models:nothing"], "callable 'nothing' not found"),
    (lambda t: ["--model", "invrob_test_models:NOT_CALLABLE"], "not callable"),
    (lambda t: ["--model", "invrob_test_models:not_a_module"], "not a torch.nn.Module"),
    (lambda t: ["--model", "invrob_test_models:broken"], "no weights here"),
    (lambda t: ["--model", "invrob_test_models:Tiny", "--weights", _bad_weights(t)], "does not fit"),
    (lambda t: ["--model", "invrob_test_models:Tiny", "--weights", str(t / "none.pt")], "--weights"),
    (lambda t: ["--model", "invrob_test_models:Tiny", "--model-kwarg", "classes=7"],
     "(N, 10) floating-point logits"),
    (lambda t: ["--model", _wrong_shape_script(t)], "(N, 10) floating-point logits"),
    (lambda t: ["--model", str(t / "missing.pt")], "does not exist"),
    (lambda t: ["--model", "invrob_test_models:resnet18_1ch", "--dataset", "fashion-mnist",
                "--data-dir", str(t / "nodata")], "not found under"),
    (lambda t: ["--model", "invrob_test_models:Tiny", "--dataset", "imagenet"], "imagenet"),
    (lambda t: ["--model", "invrob_test_models:Tiny", "--input-mean", "0.1,0.2"], "--input-mean"),
    (lambda t: ["--model", "invrob_test_models:Tiny", "--grid-points", "4"], "--grid-points"),
    (lambda t: ["--model", "invrob_test_models:Tiny", "--eps", "0,2"], "--eps"),
    (lambda t: ["--model", "invrob_test_models:switched", "--model-kwarg", "invariant=maybe"],
     "expects bool"),
    (lambda t: ["--model", "invrob_test_models:switched", "--model-kwarg", "depth=3"],
     "takes no argument 'depth'"),
    (lambda t: ["--model", _state_dict_file(t)], "--weights"),
    (lambda t: ["--model", ""], "--model is empty"),
    (lambda t: ["--weights", _bad_weights(t)], "--model is required with --out, --weights"),
])
def test_bad_model_input_is_one_line_exit_2_and_writes_nothing(make_argv, needle, tmp_path,
                                                              capsys, models):
    out = tmp_path / "o" / "e.json"
    argv = ["profile", *make_argv(tmp_path), "--out", str(out), "--n-test", "4", "--quiet"]
    code, stdout, err = run(argv, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("invrob profile: error:"), err
    assert needle in lines[0]
    assert not out.exists() and not out.with_suffix(".png").exists()


def test_rejected_image_shape_is_one_line_exit_2(tmp_path, capsys, models):
    """A model for 3-channel images asked to classify 1-channel digits."""
    out = tmp_path / "e.json"
    code, _, err = run(["profile", "--model", "torchvision.models:resnet18", "--model-kwarg",
                        "num_classes=10", "--out", str(out), "--n-test", "4", "--quiet"], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "rejects mnist5k images of shape (N, 1, 28, 28)" in err and not out.exists()


def test_autoattack_without_torchattacks_says_how_to_install(tmp_path, capsys, models, monkeypatch):
    for library in ("torchattacks", "pyautoattack"):  # import LIBRARY -> ImportError
        monkeypatch.setitem(sys.modules, library, None)
    out = tmp_path / "e.json"
    code, _, err = run(["profile", "--model", "invrob_test_models:Tiny", "--attack", "autoattack",
                        "--out", str(out), "--n-test", "4", "--quiet"], capsys)
    assert code == 2 and err.count("\n") == 1 and "pip install" in err and not out.exists()


@pytest.mark.slow
def test_console_script_exits_2_in_a_real_process(tmp_path):
    exe = shutil.which("invrob", path=str(Path(sys.executable).parent))
    cmd = [exe] if exe else [sys.executable, "-m", "invrob"]
    proc = subprocess.run([*cmd, "profile", "--model", "no_such_module_y:f", "--out",
                           str(tmp_path / "e.json")], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "no_such_module_y" in proc.stderr and not (tmp_path / "e.json").exists()
    # a module in the current folder is found, as `python -m` finds it
    (tmp_path / "here_mod.py").write_text("def f():\n    return 3\n")
    proc = subprocess.run([*cmd, "profile", "--model", "here_mod:f", "--out",
                           str(tmp_path / "e.json")], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode == 2 and "returned int, not a torch.nn.Module" in proc.stderr


def test_profile_with_no_arguments_names_both_forms(capsys):
    code, out, err = run(["profile"], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "RUN_DIR" in err and "--model" in err and "invrob profile:" in err


def test_model_kwargs_read_python_literals_and_follow_annotations(models, tmp_path, capsys):
    from core import validate
    from empirics.external import check_kwargs
    import invrob_test_models as m

    assert validate.keyword("invariant=False", "--model-kwarg") == ("invariant", False)
    assert validate.keyword("invariant=false", "--model-kwarg") == ("invariant", False)
    assert validate.keyword("x=None", "--model-kwarg") == ("x", None)
    assert validate.keyword("name=abc", "--model-kwarg") == ("name", "abc")
    check_kwargs(m.switched, {"invariant": False, "width": 4}, "switched")
    for bad in ({"invariant": "False"}, {"width": 2.5}, {"width": True}):
        with pytest.raises(ValueError, match="switched expects"):
            check_kwargs(m.switched, bad, "switched")
    out = tmp_path / "k.json"
    code, _, err = run(["profile", "--model", "invrob_test_models:switched", "--model-kwarg",
                        "invariant=False", "--out", str(out), *FAST], capsys)
    assert code == 0, err
    assert json.loads(out.read_text())["model"]["kwargs"] == {"invariant": False}
    # no --weights: said once on stderr, the run goes on
    assert err.count("\n") == 1 and "warning: no --weights" in err


def test_eps_as_fractions(models, tmp_path, capsys):
    out = tmp_path / "f.json"
    code, _, err = run(["profile", "--model", "invrob_test_models:Tiny", "--out", str(out),
                        *FAST, "--eps", "0,8/255"], capsys)
    assert code == 0, err
    assert json.loads(out.read_text())["eps"] == [0.0, 8 / 255]


@pytest.mark.slow
def test_one_profile_schema_for_a_run_folder_whichever_command(tmp_path, capsys):
    """`python -m empirics.profile RUN_DIR` and `invrob profile --model RUN_DIR`
    write one schema with the same numbers for the same measurement."""
    run_dir = tmp_path / "run"
    tr.main(["--out", str(run_dir), *TINY_TRAIN])
    args = ["--thetas", "0,45", "--eps", "0,0.1", "--steps", "2", "--n-test", "30", "--quiet"]
    prof.main([str(run_dir), *args])
    a = json.loads((run_dir / "profile.json").read_text())
    out = tmp_path / "ev.json"
    code, _, err = run(["profile", "--model", str(run_dir), "--out", str(out), "--k", "2",
                        "--grid-points", "3", *args], capsys)
    assert code == 0, err
    b = json.loads(out.read_text())
    assert a["schema"] == b["schema"] == "invrob.evaluation/1"
    assert set(a) == set(b) and set(a["model"]) <= set(b["model"])
    for key in ("eps", "clean_acc", "robust_acc", "per_point", "test_points", "n_examples"):
        assert a[key] == b[key], key
    assert a["rotation"]["invariance"] == b["rotation"]["invariance"]
    assert a["attacks"]["pgd"] == b["attacks"]["pgd"]
    assert a["model"]["epoch"] == b["model"]["epoch"] == 1
    assert "spatial" in b["rotation"] and "spatial" not in a["rotation"]
