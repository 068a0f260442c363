"""The adversarial corpus (`tests/corpus`, see make_corpus.py there) through
every Python way of reading a file, on both backends: each bad file raises
`SafetensorError` with the message `expected.json` names, each valid one
reads whole, and nothing crashes, hangs or allocates what a header claims.

The files are read in one subprocess per backend, capped in address space
and time (see capped.py). The reference `safetensors` 0.8.0 reads them in
the same subprocess: it must reject what `expected.json` says it rejects,
and read the valid files to the same values."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List

import pytest

from capped import run_capped

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
MANIFEST: Dict[str, Dict[str, str]] = json.loads((CORPUS / "expected.json").read_text(encoding="utf-8"))

# Room for the reads themselves; the headers claim terabytes and more.
HEADROOM = 1 << 30
TIMEOUT = 120  # seconds for the whole corpus; only a hang comes near it

# Reads every corpus file every way, and prints, as JSON,
# {file: {way: [exception type or "ok", message, what was read]}}. Which
# case it is on goes to stderr first, so that a crash names it.
READER = """
import json, sys
from pathlib import Path

import numpy as np
import safetensors
import safetensors.numpy
import torch

import ironsafe
import ironsafe.numpy
import ironsafe.torch

corpus, backend, tests = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
sys.path.insert(0, tests)
from oracle import outcome


def read_all(lib, path, framework, **options):
    # keys, metadata, each tensor, and ours each tensor again through
    # get_slice (the reference's [...] fails on zero-size tensors).
    read = {}
    with lib.safe_open(path, framework, **options) as f:
        f.metadata()
        for name in f.keys():
            tensor = f.get_tensor(name)
            if lib is ironsafe:
                whole = f.get_slice(name)[...]
                assert (whole.dtype, whole.shape) == (tensor.dtype, tensor.shape), name
            if framework == "np":
                if lib is ironsafe:
                    assert whole.tobytes() == tensor.tobytes(), name
                read[name] = [tensor.dtype.str, list(tensor.shape), tensor.tobytes().hex()]
    return read


def run(call):
    result = []
    kind, message = outcome(lambda: result.append(call()))
    return [kind, message, result[0] if result and isinstance(result[0], dict) else None]


cap_address_space(int(sys.argv[4]))
results = {}
for path in sorted(corpus.glob("*.safetensors")):
    print("reading", path.name, file=sys.stderr, flush=True)
    data = path.read_bytes()
    ways = {
        "safe_open np": lambda: read_all(ironsafe, path, "np", backend=backend),
        "safe_open pt": lambda: read_all(ironsafe, path, "pt", backend=backend),
        "numpy.load_file": lambda: ironsafe.numpy.load_file(path, backend=backend) and None,
        "torch.load_file": lambda: ironsafe.torch.load_file(path, backend=backend) and None,
        "deserialize": lambda: ironsafe.deserialize(data) and None,
        "reference safe_open np": lambda: read_all(safetensors, path, "np"),
        "reference deserialize": lambda: safetensors.deserialize(data) and None,
    }
    results[path.name] = {way: run(call) for way, call in ways.items()}
print(json.dumps(results))
"""

# The message prefix of each way of ours, as the reference words it.
PREFIXES = {
    "safe_open np": "Error while deserializing header: ",
    "safe_open pt": "Error while deserializing header: ",
    "numpy.load_file": "Error while deserializing header: ",
    "torch.load_file": "Error while deserializing header: ",
    "deserialize": "Error while deserializing: ",
}


@pytest.fixture(scope="module", params=["mmap", "pread"])
def outcomes(request: pytest.FixtureRequest) -> Dict[str, Dict[str, List[Any]]]:
    """What each way of reading did with each corpus file, on one backend."""
    done = run_capped(
        READER, [str(CORPUS), request.param, str(Path(__file__).parent), str(HEADROOM)], timeout=TIMEOUT
    )
    results: Dict[str, Dict[str, List[Any]]] = json.loads(done.stdout)
    return results


def test_the_corpus_is_large_and_mixed() -> None:
    assert len(MANIFEST) >= 60
    valid = [name for name, case in MANIFEST.items() if case["variant"] == "valid"]
    assert 5 <= len(valid) < len(MANIFEST)


def test_every_file_is_read(outcomes: Dict[str, Dict[str, List[Any]]]) -> None:
    assert sorted(outcomes) == sorted(MANIFEST)


def test_bad_files_raise_the_expected_error(outcomes: Dict[str, Dict[str, List[Any]]]) -> None:
    wrong = []
    for name, case in MANIFEST.items():
        if case["variant"] == "valid":
            continue
        for way, prefix in PREFIXES.items():
            kind, message, _ = outcomes[name][way]
            if kind != "SafetensorError" or not message.startswith(prefix) or case["message"] not in message:
                wrong.append(f"{name} via {way}: {kind}: {message}")
    assert not wrong, "\n".join(wrong)


def test_valid_files_read_whole_and_as_the_reference_reads_them(
    outcomes: Dict[str, Dict[str, List[Any]]],
) -> None:
    """Where the reference reads a valid file, ironsafe reads the same values;
    where it cannot (no numpy dtype for F4, a dimension too large for numpy
    or torch), ironsafe raises too, and nothing crashes."""
    checked = 0
    for name, case in MANIFEST.items():
        if case["variant"] != "valid":
            continue
        ours = outcomes[name]
        theirs = ours["reference safe_open np"]
        if theirs[0] == "ok":
            assert ours["safe_open np"] == theirs, name
            checked += 1
        else:
            assert ours["safe_open np"][0] != "ok", name
        assert ours["deserialize"][0] == "ok", name
        if ours["safe_open np"][0] == "ok":
            assert ours["numpy.load_file"][0] == "ok", name
        if ours["safe_open pt"][0] == "ok":
            assert ours["torch.load_file"][0] == "ok", name
    assert checked >= 5


def test_the_reference_rejects_what_it_should(outcomes: Dict[str, Dict[str, List[Any]]]) -> None:
    """The reference rejects every bad file but those ironsafe rejects on
    purpose (README: duplicates, unknown fields, entries as lists)."""
    for name, case in MANIFEST.items():
        for way in ("reference safe_open np", "reference deserialize"):
            kind = outcomes[name][way][0]
            if case["reference"] == "accepts" and case["variant"] != "valid":
                assert kind == "ok", (name, way, outcomes[name][way])
            elif case["reference"] == "rejects":
                assert kind == "SafetensorError", (name, way, outcomes[name][way])
