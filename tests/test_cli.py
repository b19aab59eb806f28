import subprocess
import sys

import pytest

from fundusrt.runtime import cli


def test_help_lists_the_plugged_in_commands(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "synth" in out and "screen" in out and "report" in out


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "fundusrt.runtime.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("fundusrt ")


def test_unavailable_command_says_what_it_needs(monkeypatch, capsys):
    class Missing:
        name = "train"

        def load(self):
            raise ModuleNotFoundError("No module named 'torch'", name="torch")

    monkeypatch.setattr(cli, "entry_points", lambda group: [Missing()])
    with pytest.raises(SystemExit) as done:
        cli.main(["train", "classify"])
    assert "needs torch" in str(done.value.code) and "fundusrt[train]" in str(done.value.code)


def test_a_command_missing_its_extra_says_what_to_install(monkeypatch):
    """Registration imports nothing heavy, so a missing extra shows when the command runs."""
    import fundusrt.train.cli as train_cli

    def needs_torch(args):
        raise ModuleNotFoundError("No module named 'torch'", name="torch")

    monkeypatch.setattr(train_cli, "run", needs_torch)
    with pytest.raises(SystemExit) as done:
        cli.main(["train", "classify", "--data", "x", "--out", "y"])
    assert done.value.code == "fundusrt train: needs torch: pip install 'fundusrt[train]'"


HEAVY = ("numpy", "cv2", "onnxruntime", "onnx", "torch", "sklearn", "scipy", "openvino", "ray", "matplotlib", "PIL")


def test_registering_the_commands_imports_nothing_heavy():
    """`fundusrt --help` must answer at once: no command module may import its heavy code at registration."""
    code = (
        "import sys; from fundusrt.runtime.cli import build_parser; build_parser(); "
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_usage_error_exits_2(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["synth", "--n", "3"])  # --out missing
    assert done.value.code == 2
