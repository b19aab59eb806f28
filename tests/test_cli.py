import subprocess
import sys

import pytest

from fundusrt.runtime import cli


def test_help_lists_the_plugged_in_commands(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["--help"])
    assert done.value.code == 0
    assert "synth" in capsys.readouterr().out


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


def test_usage_error_exits_2(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["synth", "--n", "3"])  # --out missing
    assert done.value.code == 2
