"""The quick-start tutorial (``examples/quickstart.py``) runs on ironsafe."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("torchvision")

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart.py"


def test_quickstart_runs(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(QUICKSTART)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    # What the tutorial prints: the tensors, the slice's shape, the slice,
    # and whether both models give the same outputs.
    assert lines[0].startswith("{'attention': tensor([[0., 0., 0.],")
    assert "'embedding': tensor([[0., 0.]," in result.stdout
    assert "2 2" in lines
    assert lines[-1] == "tensor(True)"
    assert (tmp_path / "model.safetensors").is_file()
    assert (tmp_path / "resnet18.safetensors").is_file()

    # The files it wrote are ordinary safetensors files: the reference
    # reads them.
    torch = pytest.importorskip("torch")
    reference = pytest.importorskip("safetensors.torch")
    from torchvision.models import resnet18  # type: ignore[import-untyped]

    import ironsafe.torch

    small = reference.load_file(tmp_path / "model.safetensors")
    assert small.keys() == {"embedding", "attention"}
    assert torch.equal(small["embedding"], torch.zeros((2, 2)))
    assert torch.equal(small["attention"], torch.zeros((2, 3)))

    model = resnet18(weights=None)
    assert reference.load_model(model, tmp_path / "resnet18.safetensors") == (set(), [])
    loaded = ironsafe.torch.load_file(tmp_path / "resnet18.safetensors")
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded[name])
