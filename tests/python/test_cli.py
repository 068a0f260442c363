"""The ``ironsafe`` command as ``pip install`` puts it in the environment's
bin directory (the console script of ``ironsafe._cli``), on files written by
the reference ``safetensors``: output, exit codes, and shards that load the
way transformers loads a sharded checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
import safetensors.numpy
import safetensors.torch
import torch
from safetensors import safe_open

BIN = Path(sys.executable).parent
IRONSAFE = BIN / ("ironsafe.exe" if os.name == "nt" else "ironsafe")


def ironsafe(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(IRONSAFE), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def state_dict() -> Dict[str, torch.Tensor]:
    """A small model's tensors: numbered layers, several dtypes."""
    generator = torch.Generator().manual_seed(7)
    tensors = {"model.embed_tokens.weight": torch.randn(16, 8, generator=generator)}
    for layer in range(3):
        tensors[f"model.layers.{layer}.mlp.weight"] = torch.randn(8, 8, generator=generator).to(torch.bfloat16)
        tensors[f"model.layers.{layer}.mlp.bias"] = torch.randn(8, generator=generator).to(torch.float16)
    tensors["lm_head.weight"] = torch.randn(16, 8, generator=generator)
    tensors["position_ids"] = torch.arange(10).reshape(1, 10)
    return tensors


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "model.safetensors"
    safetensors.torch.save_file(state_dict(), str(path), metadata={"format": "pt"})
    return path


def test_the_console_script_is_installed() -> None:
    assert IRONSAFE.is_file(), f"pip install did not put `ironsafe` in {BIN}"
    done = ironsafe("--version", cwd=BIN)
    import ironsafe as package

    assert (done.returncode, done.stdout) == (0, f"ironsafe {package.__version__}\n")


def test_python_dash_m_runs_the_same_command(model: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ironsafe", "verify", model.name],
        cwd=model.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "model.safetensors: ok, 9 tensors\n", "")


def test_inspect_lists_what_the_reference_reads(model: Path) -> None:
    done = ironsafe("inspect", "--json", model.name, cwd=model.parent)
    assert done.returncode == 0, done.stderr
    [report] = json.loads(done.stdout)
    with safe_open(str(model), framework="np") as f:
        assert report["metadata"] == f.metadata()
        expected = {name: (f.get_slice(name).get_dtype(), f.get_slice(name).get_shape()) for name in f.keys()}
    assert {t["name"]: (t["dtype"], t["shape"]) for t in report["tensors"]} == expected
    assert report["totals"]["bytes"] == sum(t.numel() * t.element_size() for t in state_dict().values())

    table = ironsafe("inspect", model.name, cwd=model.parent)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].startswith("model.safetensors: header ")
    assert lines[1].split() == ["NAME", "DTYPE", "SHAPE", "PARAMS", "SIZE", "OFFSETS"]
    # Numbered layers in numeric order, each row with its dtype and shape.
    assert lines[2].split()[:4] == ["lm_head.weight", "F32", "[16,", "8]"]
    assert [line.split()[0] for line in lines[2:11]] == [
        "lm_head.weight",
        "model.embed_tokens.weight",
        "model.layers.0.mlp.bias",
        "model.layers.0.mlp.weight",
        "model.layers.1.mlp.bias",
        "model.layers.1.mlp.weight",
        "model.layers.2.mlp.bias",
        "model.layers.2.mlp.weight",
        "position_ids",
    ]
    assert lines[11] == ""


def test_verify_and_exit_codes(model: Path) -> None:
    data = model.read_bytes()
    (model.parent / "trailing.safetensors").write_bytes(data + b"\0")
    nan = {"w": np.array([1.0, np.nan, np.inf], dtype=np.float32)}
    safetensors.numpy.save_file(nan, str(model.parent / "nan.safetensors"))

    assert ironsafe("verify", model.name, cwd=model.parent).returncode == 0
    trailing = ironsafe("verify", "trailing.safetensors", cwd=model.parent)
    assert trailing.returncode == 1
    assert trailing.stdout.startswith("trailing.safetensors: the tensors cover")
    values = ironsafe("verify", "--values", "nan.safetensors", cwd=model.parent)
    assert (values.returncode, values.stdout) == (
        1,
        "nan.safetensors: tensor `w` holds 1 NaN and 1 infinite values\n",
    )
    missing = ironsafe("verify", "missing.safetensors", cwd=model.parent)
    assert missing.returncode == 2
    assert "missing.safetensors" in missing.stderr
    assert ironsafe("verify", cwd=model.parent).returncode == 2


def test_diff_finds_a_changed_value(model: Path) -> None:
    tensors = state_dict()
    tensors["lm_head.weight"][3, 4] += 0.5
    safetensors.torch.save_file(tensors, str(model.parent / "changed.safetensors"), metadata={"format": "pt"})
    same = ironsafe("diff", model.name, model.name, cwd=model.parent)
    assert (same.returncode, same.stdout.splitlines()[-1]) == (0, "no differences")
    changed = ironsafe("diff", model.name, "changed.safetensors", cwd=model.parent)
    assert changed.returncode == 1
    assert "~ tensor `lm_head.weight`: 1 of 128 values differ, max abs difference 0.5" in changed.stdout
    assert ironsafe("diff", "--atol", "0.6", model.name, "changed.safetensors", cwd=model.parent).returncode == 0


def load_sharded(folder: Path) -> Dict[str, torch.Tensor]:
    """What transformers does with a sharded checkpoint: read the index,
    load every shard it names, check each shard's format metadata."""
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    loaded: Dict[str, torch.Tensor] = {}
    for shard in sorted(set(index["weight_map"].values())):
        with safe_open(str(folder / shard), framework="pt") as f:
            assert f.metadata() == {"format": "pt"}
        part = safetensors.torch.load_file(str(folder / shard))
        assert all(index["weight_map"][name] == shard for name in part)
        loaded.update(part)
    assert sorted(loaded) == sorted(index["weight_map"])
    assert index["metadata"]["total_size"] == sum(t.numel() * t.element_size() for t in loaded.values())
    return loaded


def test_shards_load_like_a_transformers_checkpoint(model: Path) -> None:
    done = ironsafe("shard", model.name, "sharded", "--max-size", "600B", cwd=model.parent)
    assert done.returncode == 0, done.stderr
    shards: List[str] = sorted(p.name for p in (model.parent / "sharded").glob("*.safetensors"))
    assert len(shards) > 2
    assert shards[0] == f"model-00001-of-{len(shards):05d}.safetensors"
    loaded = load_sharded(model.parent / "sharded")
    for name, tensor in state_dict().items():
        assert torch.equal(loaded[name], tensor), name

    merged = ironsafe("merge", "sharded/model.safetensors.index.json", "merged.safetensors", cwd=model.parent)
    assert merged.returncode == 0, merged.stderr
    # The reference wrote the source; the merge gives back its very bytes.
    assert (model.parent / "merged.safetensors").read_bytes() == model.read_bytes()


def test_a_closed_pipe_ends_the_command_quietly(tmp_path: Path) -> None:
    many = {f"layer.{i}.a_rather_long_tensor_name": np.zeros(1, dtype=np.uint8) for i in range(4000)}
    safetensors.numpy.save_file(many, str(tmp_path / "big.safetensors"))
    process = subprocess.Popen(
        [str(IRONSAFE), "inspect", "big.safetensors"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert process.stdout is not None and process.stderr is not None
    first = process.stdout.readline()  # as `| head -1` reads
    process.stdout.close()
    stderr = process.stderr.read()
    assert process.wait(timeout=120) == 0
    assert first.startswith(b"big.safetensors: header")
    assert stderr == b""


# --- convert ---------------------------------------------------------------------------


@pytest.mark.parametrize("zipfile", [True, False], ids=["zip", "legacy"])
def test_convert_a_torch_checkpoint(tmp_path: Path, zipfile: bool) -> None:
    tensors = state_dict()
    tensors["model.layers.0.mlp.weight_t"] = tensors["model.layers.0.mlp.weight"].t()  # a strided view
    checkpoint = {"state_dict": tensors, "epoch": 3}
    torch.save(checkpoint, tmp_path / "model.pt", _use_new_zipfile_serialization=zipfile)

    done = ironsafe("convert", "model.pt", "model.safetensors", "--key", "state_dict", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "wrote model.safetensors" in done.stderr
    loaded = safetensors.torch.load_file(str(tmp_path / "model.safetensors"))
    expected = torch.load(tmp_path / "model.pt", weights_only=True)["state_dict"]
    assert sorted(loaded) == sorted(expected)
    for name, tensor in expected.items():
        assert torch.equal(loaded[name], tensor), name

    # Without --key, the epoch counter is not a tensor: a warning, or with
    # --strict an error and no file.
    done = ironsafe("convert", "model.pt", "all.safetensors", cwd=tmp_path)
    assert done.returncode == 0 and "warning:" in done.stderr and "epoch" in done.stderr, done.stderr
    done = ironsafe("convert", "model.pt", "strict.safetensors", "--strict", cwd=tmp_path)
    assert done.returncode == 2 and "epoch" in done.stderr, done.stderr
    assert not (tmp_path / "strict.safetensors").exists()


def test_convert_a_sharded_checkpoint(tmp_path: Path) -> None:
    tensors = state_dict()
    names = sorted(tensors)
    halves = {"pytorch_model-00001-of-00002.bin": names[:4], "pytorch_model-00002-of-00002.bin": names[4:]}
    weight_map = {}
    for shard, shard_names in halves.items():
        torch.save({name: tensors[name] for name in shard_names}, tmp_path / shard)
        weight_map.update({name: shard for name in shard_names})
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (tmp_path / "pytorch_model.bin.index.json").write_text(json.dumps(index))

    done = ironsafe("convert", "pytorch_model.bin.index.json", "out", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "out"
    written = json.loads((out / "model.safetensors.index.json").read_text())
    assert written["metadata"]["total_size"] == total
    assert sorted(written["weight_map"]) == names
    assert set(written["weight_map"].values()) == {
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    }
    for name, shard in written["weight_map"].items():
        with safe_open(str(out / shard), "pt") as file:
            assert file.metadata() == {"format": "pt"}
            assert torch.equal(file.get_tensor(name), tensors[name]), name
    # The result passes the command's own checks, index against shards included.
    assert ironsafe("verify", "out/model.safetensors.index.json", cwd=tmp_path).returncode == 0
