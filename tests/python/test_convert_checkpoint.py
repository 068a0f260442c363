"""``ironsafe.convert_checkpoint``: torch checkpoints to safetensors without
running pickle.

Checkpoints come from ``torch.save`` in both formats (zip, and legacy with
``_use_new_zipfile_serialization=False``); results are compared tensor by
tensor with ``torch.load(weights_only=True)`` and read back with the
reference ``safetensors``. Malicious pickles are written byte by byte or
with ``pickle.Pickler`` (writing a pickle runs nothing); this process never
unpickles them, and a canary file proves their payload never ran.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest

pytest.importorskip("torch")
pytest.importorskip("safetensors.torch")  # the reference, as oracle

import safetensors.torch as ref  # noqa: E402
import torch  # noqa: E402
from safetensors import safe_open  # noqa: E402

import ironsafe  # noqa: E402
import ironsafe.torch  # noqa: E402
from ironsafe import SafetensorError, convert_checkpoint  # noqa: E402

FORMATS = ["zip", "legacy"]

# Every torch dtype safetensors stores.
DTYPES = [
    torch.float64,
    torch.float32,
    torch.float16,
    torch.bfloat16,
    torch.int64,
    torch.int32,
    torch.int16,
    torch.int8,
    torch.uint8,
    torch.bool,
    torch.uint16,
    torch.uint32,
    torch.uint64,
    torch.float8_e4m3fn,
    torch.float8_e5m2,
    torch.float8_e4m3fnuz,
    torch.float8_e5m2fnuz,
    torch.float8_e8m0fnu,
    torch.complex64,
]
REFERENCE_DTYPES = set(DTYPES) - {torch.float8_e8m0fnu}


def save(obj: Any, path: Path, fmt: str, protocol: int = 2) -> Path:
    torch.save(obj, path, _use_new_zipfile_serialization=(fmt == "zip"), pickle_protocol=protocol)
    return path


def make(dtype: torch.dtype, shape: Tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """Random values of ``dtype``, every bit pattern meaningful."""
    gen = torch.Generator().manual_seed(seed)
    if dtype == torch.bool:
        return torch.randint(0, 2, shape, generator=gen).bool()
    if dtype.is_complex:
        return torch.randn(shape, generator=gen, dtype=dtype)
    if dtype.is_floating_point:
        return (torch.randn(shape, generator=gen) * 4).to(dtype)
    # Integers: random raw bytes, so that every bit is exercised.
    size = torch.empty((), dtype=dtype).element_size()
    raw = torch.randint(0, 256, (*shape, size), generator=gen, dtype=torch.uint8)
    return raw.view(dtype).reshape(shape)


def raw(tensor: torch.Tensor) -> torch.Tensor:
    """The bytes of a tensor, row-major: compares every dtype bit for bit."""
    return tensor.contiguous().reshape(-1).view(torch.uint8)


def flatten(tree: Any, prefix: str = "") -> Iterator[Tuple[str, Any]]:
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from flatten(value, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, tree


def check_against_torch(src: Path, dst: Path, report: Dict[str, Any], key: Any = None, saved: Any = None) -> None:
    """Every tensor ``torch.load`` finds is in ``dst`` (or removed as a
    duplicate of one that is), bit for bit, and the reference reads ``dst``.

    torch cannot load some of its own legacy-format saves (the dtypes it
    pickles through ``UntypedStorage``, such as uint16 and float8, and any
    save with protocol 4 or 5, whose FRAME opcode its weights-only reader
    refuses): for those the object that was ``saved`` is the expectation."""
    try:
        loaded = torch.load(src, weights_only=True)
    except (AttributeError, pickle.UnpicklingError):
        assert saved is not None
        loaded = saved
    if key is not None:
        loaded = loaded[key]
    tensors = {name: value for name, value in flatten(loaded) if isinstance(value, torch.Tensor)}
    skipped = sorted(name for name, value in flatten(loaded) if not isinstance(value, torch.Tensor))
    written = ironsafe.torch.load_file(dst)
    # The reference reads every dtype it has (it lacks float8_e8m0fnu).
    if all(t.dtype in REFERENCE_DTYPES for t in written.values()):
        theirs = ref.load_file(dst)
        assert all(torch.equal(raw(theirs[name]), raw(t)) for name, t in written.items())
    assert sorted(report["tensors"]) == sorted(written)
    assert sorted(report["skipped"]) == skipped
    assert set(written) | set(report["removed"]) == set(tensors)
    assert not set(written) & set(report["removed"])
    for name, tensor in tensors.items():
        ours = written[report["removed"].get(name, name)]
        assert ours.dtype == tensor.dtype, name
        assert ours.shape == tensor.shape, name
        assert torch.equal(raw(ours), raw(tensor)), name
    with safe_open(dst, framework="pt") as f:
        assert f.metadata() == {"format": "pt", **report["removed"]}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_every_dtype(tmp_path: Path, fmt: str, dtype: torch.dtype) -> None:
    state = {
        "matrix": make(dtype, (3, 5), seed=1),
        "scalar": make(dtype, (), seed=2),
        "empty": make(dtype, (0, 4), seed=3),
        "cube": make(dtype, (2, 3, 4), seed=4),
    }
    src = save(state, tmp_path / "model.pt", fmt)
    dst = tmp_path / "model.safetensors"
    report = convert_checkpoint(src, dst)
    assert report == {"tensors": ["cube", "empty", "matrix", "scalar"], "removed": {}, "skipped": []}
    check_against_torch(src, dst, report, saved=state)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("protocol", [2, 4, 5])
@pytest.mark.parametrize("fmt", FORMATS)
def test_views_and_strides_are_written_contiguous(tmp_path: Path, fmt: str, protocol: int) -> None:
    base = torch.arange(60, dtype=torch.float32).reshape(3, 4, 5)
    other = torch.arange(40, dtype=torch.int16).reshape(8, 5)
    state = {
        "transposed": base[0].t(),
        "permuted": base.permute(2, 0, 1),
        "stepped": base[:, ::2, 1::3],
        "offset": other[3:],
        "column": other[:, 2],
        "expanded": torch.arange(3.0).reshape(3, 1).expand(3, 4),
        "channels_last": torch.arange(48.0).reshape(1, 3, 4, 4).to(memory_format=torch.channels_last),
    }
    src = save(state, tmp_path / "model.pt", fmt, protocol)
    dst = tmp_path / "model.safetensors"
    report = convert_checkpoint(src, dst)
    check_against_torch(src, dst, report, saved=state)
    # Views of one storage that differ from each other are all kept.
    assert report["removed"] == {}
    assert len(report["tensors"]) == len(state)


@pytest.mark.parametrize("fmt", FORMATS)
def test_shared_storages_follow_the_reference(tmp_path: Path, fmt: str) -> None:
    weight = make(torch.float32, (4, 3), seed=5)
    state = {
        "lm_head.weight": weight,
        "embed.weight": weight,
        "decoder.weight": weight,
        "embed.row": weight[1],
        "embed.tail": weight[2:],
        "bias": make(torch.float32, (3,), seed=6),
    }
    src = save(state, tmp_path / "model.pt", fmt)
    dst = tmp_path / "model.safetensors"
    report = convert_checkpoint(src, dst)
    # The reference keeps the alphabetically first complete name of the tied
    # weights; partial views stay, copied.
    kept = {"decoder.weight": ["embed.weight", "lm_head.weight"]}
    tied = {k: v for k, v in state.items() if k.endswith(".weight")}
    assert {k: sorted(v) for k, v in ref._remove_duplicate_names(tied).items()} == kept
    assert report["removed"] == {"embed.weight": "decoder.weight", "lm_head.weight": "decoder.weight"}
    assert report["tensors"] == ["bias", "decoder.weight", "embed.row", "embed.tail"]
    check_against_torch(src, dst, report)
    # What the reference's own save would need: no tensor left sharing memory.
    reloaded = ref.load_file(dst)
    assert torch.equal(reloaded["embed.tail"], weight[2:])


@pytest.mark.parametrize("fmt", FORMATS)
def test_nested_dicts_keys_and_non_tensor_leaves(tmp_path: Path, fmt: str) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3))
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.ones(2, 4)).sum().backward()
    optimizer.step()
    checkpoint = {
        "epoch": 3,
        "name": "run-7",
        "state_dict": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "extra": {"ema": {"decay": 0.999, "shadow": torch.ones(2)}},
    }
    src = save(checkpoint, tmp_path / "ckpt.pt", fmt)
    dst = tmp_path / "model.safetensors"

    with pytest.warns(UserWarning, match="entries that are not tensors: ") as warned:
        report = convert_checkpoint(src, dst)
    assert "epoch" in str(warned[0].message) and "optimizer.param_groups" in str(warned[0].message)
    assert "state_dict.0.weight" in report["tensors"]
    assert "optimizer.state.0.exp_avg" in report["tensors"]
    assert "extra.ema.shadow" in report["tensors"]
    assert {"epoch", "name", "extra.ema.decay", "optimizer.param_groups"} <= set(report["skipped"])
    check_against_torch(src, dst, report)

    report = convert_checkpoint(src, dst, key="state_dict", strict=True)
    assert report["tensors"] == sorted(model.state_dict())
    assert report["skipped"] == []
    check_against_torch(src, dst, report, key="state_dict")
    loaded = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3))
    loaded.load_state_dict(ref.load_file(dst))
    assert torch.equal(loaded(torch.ones(1, 4)), model(torch.ones(1, 4)))

    with pytest.raises(SafetensorError, match=r"has no top-level key `model_state` \(it has: epoch, name"):
        convert_checkpoint(src, dst, key="model_state")


def test_strict_refuses_non_tensor_leaves_and_writes_nothing(tmp_path: Path) -> None:
    src = save({"w": torch.ones(2), "step": 10, "lr": 0.1}, tmp_path / "ckpt.pt", "zip")
    dst = tmp_path / "out.safetensors"
    with pytest.raises(SafetensorError, match=r"2 entries are not tensors \(strict\): step, lr"):
        convert_checkpoint(src, dst, strict=True)
    assert not dst.exists()
    with pytest.warns(UserWarning, match="skipped 2 entries that are not tensors: step, lr"):
        assert convert_checkpoint(src, dst, verify=False)["tensors"] == ["w"]


def test_missing_and_unreadable_sources(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        convert_checkpoint(tmp_path / "missing.pt", tmp_path / "out.safetensors")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(SafetensorError, match="neither a zip archive nor a legacy torch.save stream"):
        convert_checkpoint(garbage, tmp_path / "out.safetensors")


# --- Checkpoints written by hand -----------------------------------------


class Storage:
    """Pickled as torch's persistent id of a storage."""

    def __init__(self, cls: str, key: str, numel: int, location: str = "cuda:0") -> None:
        self.cls, self.key, self.numel, self.location = cls, key, numel, location


class Rebuild:
    """Pickled as ``_rebuild_tensor_v2(storage, offset, size, stride, ...)``."""

    def __init__(self, storage: Storage, offset: int, size: Tuple[int, ...], stride: Tuple[int, ...]) -> None:
        self.args = (storage, offset, size, stride, False, collections.OrderedDict())

    def __reduce__(self) -> Tuple[Any, ...]:
        return (torch._utils._rebuild_tensor_v2, self.args)


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj: Any) -> Any:
        if isinstance(obj, Storage):
            return ("storage", getattr(torch, obj.cls), obj.key, obj.location, obj.numel)
        return None


def dumps(obj: Any, protocol: int = 2) -> bytes:
    """Pickle bytes of ``obj``: writing a pickle calls nothing of it."""
    buf = io.BytesIO()
    _Pickler(buf, protocol=protocol).dump(obj)
    return buf.getvalue()


def zip_checkpoint(
    path: Path,
    data_pkl: bytes,
    storages: Dict[str, bytes],
    *,
    compression: int = zipfile.ZIP_STORED,
    byteorder: bytes = b"little",
) -> Path:
    with zipfile.ZipFile(path, "w", compression) as archive:
        archive.writestr("archive/data.pkl", data_pkl)
        archive.writestr("archive/byteorder", byteorder)
        for key, data in storages.items():
            archive.writestr(f"archive/data/{key}", data)
        archive.writestr("archive/version", "3\n")
    return path


def legacy_checkpoint(path: Path, main: bytes, storages: List[Tuple[str, int, bytes]]) -> Path:
    """The legacy layout: magic, protocol, sys_info, the object, the keys,
    then each storage with its element count."""
    parts = [
        pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2),
        pickle.dumps(1001, protocol=2),
        pickle.dumps({"protocol_version": 1001, "little_endian": True}, protocol=2),
        main,
        pickle.dumps([key for key, _, _ in storages], protocol=2),
    ]
    for _, count, data in storages:
        parts.append(count.to_bytes(8, "little") + data)
    path.write_bytes(b"".join(parts))
    return path


def test_hand_written_checkpoints_on_any_device(tmp_path: Path) -> None:
    values = torch.arange(6, dtype=torch.float32)
    storage = Storage("FloatStorage", "0", 6)
    tree = {"w": Rebuild(storage, 0, (2, 3), (3, 1)), "t": Rebuild(storage, 1, (2, 2), (1, 3))}
    src = zip_checkpoint(tmp_path / "hand.pt", dumps(tree), {"0": values.numpy().tobytes()})
    dst = tmp_path / "hand.safetensors"
    convert_checkpoint(src, dst)
    out = ref.load_file(dst)
    assert torch.equal(out["w"], values.reshape(2, 3))
    assert torch.equal(out["t"], torch.tensor([[1.0, 4.0], [2.0, 5.0]]))


# --- Malicious checkpoints ------------------------------------------------


@pytest.fixture
def canary(tmp_path: Path) -> Iterator[Path]:
    """A file the payloads would create; each test asserts it does not exist."""
    path = tmp_path / "canary"
    yield path
    assert not path.exists(), "a payload ran"


class Payload:
    """Pickles as ``func(*args)``: what unpickling would call."""

    def __init__(self, func: Any, *args: Any) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> Tuple[Any, ...]:
        return (self.func, self.args)


def payloads(canary: Path) -> Dict[str, Payload]:
    touch = f"open({str(canary)!r}, 'w').close()"
    return {
        "os.system": Payload(os.system, f"touch {canary}"),
        "builtins.eval": Payload(eval, touch),
        "builtins.exec": Payload(exec, touch),
        "subprocess.call": Payload(subprocess.call, ["touch", str(canary)]),
    }


def test_the_payloads_are_live(tmp_path: Path) -> None:
    """Unpickled by a separate Python, a payload does create its canary: the
    canary checks below would see it run."""
    canary = tmp_path / "live-canary"
    data = pickle.dumps({"w": payloads(canary)["os.system"]}, protocol=2)
    subprocess.run([sys.executable, "-c", "import pickle, sys; pickle.loads(sys.stdin.buffer.read())"], input=data, check=True)
    assert canary.exists()


@pytest.mark.parametrize("protocol", [2, 4])
@pytest.mark.parametrize("name", ["os.system", "builtins.eval", "builtins.exec", "subprocess.call"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_code_running_globals_are_refused(tmp_path: Path, canary: Path, fmt: str, name: str, protocol: int) -> None:
    payload = payloads(canary)[name]
    data = dumps({"weight": payload}, protocol=protocol)
    if fmt == "zip":
        src = zip_checkpoint(tmp_path / "evil.pt", data, {})
    else:
        src = legacy_checkpoint(tmp_path / "evil.pt", data, [])
    dst = tmp_path / "evil.safetensors"
    # As the pickle names them: os.system lives in `posix`, and protocol 2
    # writes Python 2's names (`__builtin__`, and `commands` for subprocess).
    module, _, attr = name.rpartition(".")
    modules = {"os": "posix", "builtins": "builtins|__builtin__", "subprocess": "subprocess|commands"}[module]
    with pytest.raises(SafetensorError, match=rf"refused global `({modules})\.{attr}` at byte \d+"):
        convert_checkpoint(src, dst)
    assert not dst.exists()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        # INST: MARK, the command, then `INST os system`.
        (b"(X\x05\x00\x00\x00touchios\nsystem\n.", r"refused opcode INST at byte 13: it instantiates a class"),
        # OBJ with an allowed class: still refused.
        (b"(ctorch\nSize\no.", r"refused opcode OBJ at byte 15"),
        # OBJ with os.system: the global is refused first.
        (b"(cos\nsystem\nX\x05\x00\x00\x00toucho.", r"refused global `os\.system` at byte 3"),
        # STACK_GLOBAL on ints instead of strings.
        (b"K\x01K\x02\x93.", r"STACK_GLOBAL at byte 6: needs a module and a name as strings, got an int and an int"),
        # A string longer than the file.
        (b"X\xff\xff\xff\xff.", r"BINUNICODE at byte 2 needs 4294967295 bytes but only 1 remain"),
        (b"\x8e" + (1 << 62).to_bytes(8, "little") + b".", r"BINBYTES8 at byte 2 needs 4611686018427387904 bytes"),
        # Deep nesting of MARKs.
        (b"(" * 100_000 + b".", r"MARK at byte 258: more than 256 nested MARKs"),
        # Text protocol 0 opcodes torch never writes.
        (b"S'touch'\n.", r"refused opcode STRING at byte 2"),
        (b"\x82\x01.", r"refused opcode EXT1 at byte 2"),
    ],
)
def test_malformed_and_forbidden_pickles_are_refused(tmp_path: Path, canary: Path, body: bytes, message: str) -> None:
    src = zip_checkpoint(tmp_path / "evil.pt", b"\x80\x02" + body, {})
    dst = tmp_path / "evil.safetensors"
    with pytest.raises(SafetensorError, match=message):
        convert_checkpoint(src, dst)
    assert not dst.exists()


def test_memo_bombs_stay_small(tmp_path: Path) -> None:
    """A tuple holding the previous one twice, 60 times over, is 60 objects
    here (2^60 if expanded): it is a skipped leaf. A dict fanned out the same
    way is refused by the entry bound."""
    body = b"]q\x00" + b"h\x00h\x00\x86q\x000" * 60
    bomb = b"\x80\x02}(X\x04\x00\x00\x00bombh\x00u."
    src = zip_checkpoint(tmp_path / "bomb.pt", b"\x80\x02" + body + bomb[2:], {})
    with pytest.warns(UserWarning, match="bomb"):
        assert convert_checkpoint(src, tmp_path / "bomb.safetensors")["skipped"] == ["bomb"]

    level = b"0}(X\x01\x00\x00\x00ah\x00X\x01\x00\x00\x00bh\x00uq\x00"
    fan = b"\x80\x02Nq\x00" + level * 40 + b"."
    src = zip_checkpoint(tmp_path / "fan.pt", fan, {})
    with pytest.raises(SafetensorError, match=r"more than 1048576 entries"):
        convert_checkpoint(src, tmp_path / "fan.safetensors")


def test_deeply_nested_dicts_are_refused(tmp_path: Path) -> None:
    body = b"}X\x01\x00\x00\x00k" * 1000 + b"N" + b"s" * 1000 + b"."
    src = zip_checkpoint(tmp_path / "deep.pt", b"\x80\x02" + body, {})
    with pytest.raises(SafetensorError, match=r"dicts nested more than 256 deep"):
        convert_checkpoint(src, tmp_path / "deep.safetensors")


def test_compressed_entries_and_deflate_bombs_are_refused(tmp_path: Path) -> None:
    real = save({"w": torch.ones(4)}, tmp_path / "real.pt", "zip")
    compressed = tmp_path / "compressed.pt"
    with zipfile.ZipFile(real) as source, zipfile.ZipFile(compressed, "w", zipfile.ZIP_DEFLATED) as out:
        for info in source.infolist():
            out.writestr(info.filename, source.read(info))
    with pytest.raises(SafetensorError, match=r"is compressed \(method 8\); only stored \(uncompressed\) entries"):
        convert_checkpoint(compressed, tmp_path / "out.safetensors")

    # 256 MiB of zeros in a few hundred KiB: refused without inflating.
    bomb = tmp_path / "bomb.pt"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as out:
        out.writestr("archive/data.pkl", dumps({"w": Rebuild(Storage("FloatStorage", "0", 1 << 26), 0, (1 << 26,), (1,))}))
        with out.open("archive/data/0", "w") as entry:
            chunk = bytes(1 << 20)
            for _ in range(256):
                entry.write(chunk)
    assert bomb.stat().st_size < 2 << 20
    with pytest.raises(SafetensorError, match=r"is compressed \(method 8\)"):
        convert_checkpoint(bomb, tmp_path / "out.safetensors")


def test_storage_sizes_and_views_are_checked(tmp_path: Path) -> None:
    storage = Storage("FloatStorage", "0", 6)
    short = zip_checkpoint(tmp_path / "short.pt", dumps({"w": Rebuild(storage, 0, (6,), (1,))}), {"0": bytes(20)})
    with pytest.raises(SafetensorError, match=r"storage `0` declares 24 bytes but 20 bytes are stored"):
        convert_checkpoint(short, tmp_path / "out.safetensors")

    for size, stride, offset in [((2, 3), (4, 1), 0), ((6,), (1,), 1), ((3,), (3,), 0)]:
        past = zip_checkpoint(
            tmp_path / "past.pt", dumps({"w": Rebuild(storage, offset, size, stride)}), {"0": bytes(24)}
        )
        with pytest.raises(SafetensorError, match=r"tensor `w`: the view .* of storage `0`, which has 24 bytes"):
            convert_checkpoint(past, tmp_path / "out.safetensors")

    huge = zip_checkpoint(
        tmp_path / "huge.pt", dumps({"w": Rebuild(storage, 0, (1 << 62, 4), (1, 1))}), {"0": bytes(24)}
    )
    with pytest.raises(SafetensorError, match=r"tensor `w`: the size, stride or offset overflows"):
        convert_checkpoint(huge, tmp_path / "out.safetensors")

    legacy = legacy_checkpoint(
        tmp_path / "legacy.pt",
        dumps({"w": Rebuild(storage, 0, (6,), (1,))}).replace(b"K\x06t", b"K\x06Nt"),
        [("0", 5, bytes(20))],
    )
    with pytest.raises(SafetensorError, match=r"storage `0` declares 24 bytes but 20 bytes are stored"):
        convert_checkpoint(legacy, tmp_path / "out.safetensors")


def test_big_endian_checkpoints_are_refused(tmp_path: Path) -> None:
    storage = Storage("FloatStorage", "0", 1)
    src = zip_checkpoint(
        tmp_path / "big.pt", dumps({"w": Rebuild(storage, 0, (1,), (1,))}), {"0": bytes(4)}, byteorder=b"big"
    )
    with pytest.raises(SafetensorError, match="saved on a big-endian machine"):
        convert_checkpoint(src, tmp_path / "out.safetensors")


def test_the_api_is_exported() -> None:
    assert ironsafe.convert_checkpoint is convert_checkpoint
    assert "convert_checkpoint" in ironsafe.__all__
    assert convert_checkpoint.__doc__ and "without unpickling" in convert_checkpoint.__doc__
