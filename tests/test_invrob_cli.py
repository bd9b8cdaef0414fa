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
    monkeypatch.setitem(sys.modules, "torchattacks", None)  # import torchattacks -> ImportError
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
