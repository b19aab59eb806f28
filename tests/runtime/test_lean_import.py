"""The runtime must load without torch, torchvision or any training/export code."""

import json
import subprocess
import sys

CHECK = r"""
import importlib, json, pkgutil, sys
import fundusrt.runtime as runtime
names = [m.name for m in pkgutil.walk_packages(runtime.__path__, "fundusrt.runtime.")]
for name in names:
    importlib.import_module(name)
heavy = sorted(m for m in sys.modules
               if m.split(".")[0] in {"torch", "torchvision", "onnx", "sklearn"}
               or m.startswith(("fundusrt.train", "fundusrt.export")))
print(json.dumps({"modules": names, "heavy": heavy}))
"""


def test_runtime_imports_nothing_heavy():
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, check=True)
    report = json.loads(out.stdout)
    assert "fundusrt.runtime.image_io" in report["modules"] and "fundusrt.runtime.cli" in report["modules"]
    assert report["heavy"] == []


def test_torch_is_installed_so_the_check_means_something():
    # In `make test`'s environment torch *is* importable: the test above would catch a leak.
    probe = subprocess.run([sys.executable, "-c", "import torch"], capture_output=True)
    assert probe.returncode == 0
