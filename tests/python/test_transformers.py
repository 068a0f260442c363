"""`ironsafe.install_as_safetensors()` under transformers: a small GPT-2,
built from a config (nothing is downloaded), saved as several shards and an
index and loaded back, all through ironsafe, with the reference's module
never imported.

`install_as_safetensors` changes `sys.modules`, so everything that calls it
runs in a subprocess, and this process keeps the reference as `safetensors`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Dict, List

import pytest

HAS_TORCH_MODULE = (Path(__file__).parents[2] / "python" / "ironsafe" / "torch.py").exists() or (
    importlib.util.find_spec("ironsafe.torch") is not None
)
needs_torch_module = pytest.mark.skipif(not HAS_TORCH_MODULE, reason="ironsafe.torch is not written yet")
needs_transformers = pytest.mark.skipif(
    importlib.util.find_spec("transformers") is None, reason="transformers is not installed"
)


def run_python(parts: List[str], cwd: Path, timeout: int = 300) -> Dict[str, Any]:
    """Runs the code `parts` (each dedented on its own) in a fresh
    interpreter, offline; returns the JSON object it prints last."""
    code = "\n".join(textwrap.dedent(part) for part in parts)
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_HOME=str(cwd / "hf-home"),
        HF_HUB_DISABLE_TELEMETRY="1",
        TRANSFORMERS_VERBOSITY="error",
        TOKENIZERS_PARALLELISM="false",
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


# Checks, inside the subprocess, that no module of the reference was loaded.
NO_REFERENCE = """
    def reference_modules():
        import safetensors as _
        return sorted(
            name for name, module in list(sys.modules.items())
            if name == "safetensors._safetensors_rust"
            or "site-packages/safetensors/" in (getattr(module, "__file__", None) or "").replace(os.sep, "/")
        )
"""


def test_this_process_keeps_the_reference() -> None:
    import safetensors

    import ironsafe

    assert safetensors is not ironsafe
    assert safetensors.__version__ == "0.8.0"
    assert not hasattr(safetensors, "install_as_safetensors")
    assert not any(type(finder).__name__ == "_SafetensorsAlias" for finder in sys.meta_path)


def test_install_as_safetensors_aliases_the_modules(tmp_path: Path) -> None:
    result = run_python(
        [
            """
        import json, os, sys
        import ironsafe
        import ironsafe.numpy  # imported before: mapped at once
        ironsafe.install_as_safetensors()
        ironsafe.install_as_safetensors()  # twice is harmless
        import safetensors
        import safetensors.numpy
        from safetensors import safe_open, serialize, SafetensorError
        """,
            NO_REFERENCE,
            """
        print(json.dumps({
            "package": safetensors is ironsafe and sys.modules["safetensors"] is ironsafe,
            "numpy": safetensors.numpy is ironsafe.numpy,
            "names": safe_open is ironsafe.safe_open and serialize is ironsafe.serialize
                     and SafetensorError is ironsafe.SafetensorError,
            "finders": sum(type(f).__name__ == "_SafetensorsAlias" for f in sys.meta_path),
            "reference": reference_modules(),
        }))
        """,
        ],
        tmp_path,
    )
    assert result == {"package": True, "numpy": True, "names": True, "finders": 1, "reference": []}


@needs_torch_module
def test_install_as_safetensors_torch(tmp_path: Path) -> None:
    result = run_python(
        [
            """
        import json, os, sys
        import ironsafe
        ironsafe.install_as_safetensors()
        import safetensors.torch
        from safetensors.torch import save_file, load_file
        import ironsafe.torch
        """,
            NO_REFERENCE,
            """
        import torch
        save_file({"w": torch.arange(4.0)}, "w.safetensors")
        print(json.dumps({
            "torch": safetensors.torch is ironsafe.torch and sys.modules["safetensors.torch"] is ironsafe.torch,
            "functions": save_file is ironsafe.torch.save_file and load_file is ironsafe.torch.load_file,
            "loaded": load_file("w.safetensors")["w"].tolist(),
            "reference": reference_modules(),
        }))
        """,
        ],
        tmp_path,
    )
    assert result == {"torch": True, "functions": True, "loaded": [0.0, 1.0, 2.0, 3.0], "reference": []}


GPT2_ROUND_TRIP = [
    """
    import json, os, sys
    import ironsafe
    ironsafe.install_as_safetensors()
    import safetensors, safetensors.torch
    import ironsafe.torch

    # Count the calls that reach ironsafe (transformers binds these names when
    # it is imported, so they are wrapped before that).
    calls = {"save_file": 0, "safe_open": 0}
    real_save_file, real_safe_open = ironsafe.torch.save_file, ironsafe.safe_open

    def save_file(*args, **kwargs):
        calls["save_file"] += 1
        return real_save_file(*args, **kwargs)

    class safe_open(real_safe_open):
        def __init__(self, *args, **kwargs):
            calls["safe_open"] += 1
            super().__init__(*args, **kwargs)

    ironsafe.torch.save_file = save_file
    ironsafe.safe_open = safe_open

    import torch
    import transformers
    """,
    NO_REFERENCE,
    """
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=100, n_positions=32)
    model = transformers.GPT2LMHeadModel(config).eval()
    model.save_pretrained("gpt2", max_shard_size="20KB")
    saves = calls["save_file"]
    loaded = transformers.GPT2LMHeadModel.from_pretrained("gpt2").eval()

    ids = torch.randint(0, 100, (2, 12), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits, logits_loaded = model(ids).logits, loaded(ids).logits
    original, reloaded = model.state_dict(), loaded.state_dict()
    print(json.dumps({
        "aliased": sys.modules["safetensors"] is ironsafe and safetensors.torch is ironsafe.torch,
        "reference": reference_modules(),
        "saves": saves,
        "opens": calls["safe_open"],
        "same_keys": sorted(original) == sorted(reloaded),
        "same_parameters": all(torch.equal(original[k], reloaded[k]) for k in original),
        "same_logits": torch.equal(logits, logits_loaded),
        "logits_shape": list(logits.shape),
    }))
    """,
]


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Any]:
    if not HAS_TORCH_MODULE:
        pytest.skip("ironsafe.torch is not written yet")
    cwd = tmp_path_factory.mktemp("transformers")
    result = run_python(GPT2_ROUND_TRIP, cwd)
    result["dir"] = cwd / "gpt2"
    return result


@needs_transformers
@needs_torch_module
def test_gpt2_saved_and_loaded_through_ironsafe(gpt2: Dict[str, Any]) -> None:
    assert gpt2["aliased"]
    assert gpt2["reference"] == []
    assert gpt2["saves"] >= 2
    assert gpt2["opens"] >= 2
    assert gpt2["same_keys"]
    assert gpt2["same_parameters"]
    assert gpt2["same_logits"]
    assert gpt2["logits_shape"] == [2, 12, 100]


@needs_transformers
@needs_torch_module
def test_gpt2_shards_and_index(gpt2: Dict[str, Any]) -> None:
    directory: Path = gpt2["dir"]
    index = json.loads((directory / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) >= 2
    assert sorted(p.name for p in directory.glob("*.safetensors")) == shards
    assert len(shards) == gpt2["saves"]
    assert shards == [f"model-{i:05d}-of-{len(shards):05d}.safetensors" for i in range(1, len(shards) + 1)]


@needs_transformers
@needs_torch_module
def test_gpt2_shards_read_and_written_like_the_reference(gpt2: Dict[str, Any]) -> None:
    """The reference reads ironsafe's shards to the same tensors, and would
    have written the same bytes."""
    import safetensors.torch as ref_torch
    import torch

    import ironsafe

    directory: Path = gpt2["dir"]
    index = json.loads((directory / "model.safetensors.index.json").read_text())
    total = 0
    for shard in sorted(set(index["weight_map"].values())):
        path = directory / shard
        theirs = ref_torch.load_file(str(path))
        assert sorted(theirs) == sorted(k for k, v in index["weight_map"].items() if v == shard)
        with ironsafe.safe_open(path, "pt") as f:
            ours = {name: f.get_tensor(name) for name in f.keys()}
            metadata = f.metadata()
        assert metadata == {"format": "pt"}
        assert sorted(ours) == sorted(theirs)
        assert all(torch.equal(ours[name], theirs[name]) for name in ours)
        assert ref_torch.save(theirs, metadata) == path.read_bytes()
        total += sum(t.numel() * t.element_size() for t in theirs.values())
    assert index["metadata"]["total_size"] == total
