"""Without PyTorch or onnx: tinyseg still imports, and an export says what to install.

torch and onnx are optional extras. `import tinyseg` (and the command line)
must not import them, and asking for an export without one is an
ImportError, or one line from the CLI, naming the pip install. These run
whether or not the extras are installed: the missing package is simulated.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tinyseg.cli import main
from tinyseg.interop import to_onnx, to_torch
from tinyseg.models import FCN


def test_import_tinyseg_imports_neither_torch_nor_onnx():
    code = ("import sys, tinyseg, tinyseg.interop, tinyseg.cli; tinyseg.cli.build_parser(); "
            "print(sorted({'torch', 'onnx', 'onnxruntime'} & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.fixture
def without(monkeypatch):
    """without("torch"): imports of that package, and of the modules that need it, now fail."""
    def hide(package: str, *modules: str):
        monkeypatch.setitem(sys.modules, package, None)         # `import package` raises ImportError
        for module in modules:                                  # so they import it again
            monkeypatch.delitem(sys.modules, module, raising=False)
    return hide


def test_to_torch_without_pytorch_names_the_install(without):
    without("torch", "tinyseg.interop.torch_twins")
    with pytest.raises(ImportError, match=r"pip install 'tinyseg\[torch\]'"):
        to_torch(FCN(in_channels=3, num_classes=2, width=4, depth=1))


def test_to_onnx_without_onnx_names_the_install(without, tmp_path):
    without("onnx", "tinyseg.interop.onnx_nodes")
    with pytest.raises(ImportError, match=r"pip install 'tinyseg\[onnx\]'"):
        to_onnx(FCN(in_channels=3, num_classes=2, width=4, depth=1), str(tmp_path / "m.onnx"))
    assert list(tmp_path.iterdir()) == []


def test_the_export_command_without_the_extra_is_one_line(without, tmp_path, capsys):
    from tinyseg.checkpoint import save_checkpoint
    model = FCN(in_channels=3, num_classes=2, width=4, depth=1)
    checkpoint = str(tmp_path / "best.npz")
    save_checkpoint(checkpoint, {f"model.{k}": v for k, v in model.state_dict().items()},
                    {"model_config": model.config})
    without("torch", "tinyseg.interop.torch_twins")
    assert main(["export", "--checkpoint", checkpoint, "--format", "torch"]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("tinyseg export: error: ")
    assert "pip install 'tinyseg[torch]'" in error
    assert not (tmp_path / "best.pt").exists()


def test_lesson_09_skips_its_parts_cleanly_without_torch_and_onnx(tmp_path):
    """The lesson as a learner without the extras runs it: the tinyseg half, and two skip notes."""
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(
        "import sys\nfor name in ('torch', 'onnx', 'onnxruntime'):\n    sys.modules[name] = None\n")
    lesson = Path(__file__).resolve().parent.parent / "lessons" / "09_the_same_network_elsewhere.py"
    env = dict(os.environ, PYTHONPATH=str(hide), TINYSEG_LESSONS_OUT=str(tmp_path / "out"),
               MPLBACKEND="Agg")
    done = subprocess.run([sys.executable, str(lesson)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PyTorch: skipped" in done.stdout and "ONNX: skipped" in done.stdout
    assert (tmp_path / "out" / "09_unet.npz").exists()
