"""llmhost's own GGUF header reader: the same answers as the gguf package on the real Gemma 3 270M file,
and one clear error, in bounded time and memory, for every hostile header."""

from __future__ import annotations

import struct
import tracemalloc

import pytest

from llmhost.plan import gguf_header
from llmhost.errors import LlmhostError

U8, I32, U32, F32, STRING, ARRAY, U64 = 0, 5, 4, 6, 8, 9, 10


def _s(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def _kv(key: str, vtype: int, payload: bytes) -> bytes:
    return _s(key) + struct.pack("<I", vtype) + payload


def gguf(kvs: list[bytes], tensors: list[bytes] = (), version: int = 3, pad_data: int = 0) -> bytes:
    head = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs)) + b"".join(kvs) + b"".join(tensors)
    head += b"\0" * (-len(head) % 32)
    return head + b"\0" * pad_data


def tensor(name: str, shape: list[int], type_id: int = 0, offset: int = 0) -> bytes:
    return _s(name) + struct.pack("<I", len(shape)) + b"".join(struct.pack("<Q", d) for d in shape) + \
        struct.pack("<IQ", type_id, offset)


LLAMA = [_kv("general.architecture", STRING, _s("llama")), _kv("llama.block_count", U32, struct.pack("<I", 2)),
         _kv("llama.attention.head_count", U32, struct.pack("<I", 4)),
         _kv("llama.embedding_length", U32, struct.pack("<I", 64))]


def write(tmp_path, data: bytes, name="m.gguf"):
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def test_the_same_tensors_and_shape_as_the_gguf_package_on_the_real_gemma(gemma):
    import gguf

    ours = gguf_header.read(str(gemma))
    reader = gguf.GGUFReader(str(gemma))
    theirs = [(t.name, t.tensor_type.name, int(t.n_bytes), [int(x) for x in t.shape]) for t in reader.tensors]
    assert ours["tensors"] == theirs
    assert (ours["arch"], ours["layers"], ours["heads"], ours["kv_heads"], ours["head_dim"], ours["vocab"]) == \
        ("gemma3", 18, 4, 1, 256, 262144)
    assert ours["weight_bytes"] == 246587904 and ours["chat_template"] is False


def test_the_type_table_matches_the_gguf_package():
    import gguf

    table = gguf_header.ggml_types()
    for quant, (block, size) in gguf.GGML_QUANT_SIZES.items():
        assert table[quant.value] == (quant.name, block, size)


def test_a_small_valid_header_with_a_tensor(tmp_path):
    data = gguf(LLAMA, [tensor("token_embd.weight", [64, 100], 0, 0)], pad_data=64 * 100 * 4)
    header = gguf_header.read(write(tmp_path, data))
    assert header["layers"] == 2 and header["vocab"] == 100 and header["weight_bytes"] == 25600
    assert header["head_dim"] == 16 and header["kv_heads"] == 4


@pytest.mark.parametrize("name,data,needle", [
    ("not gguf", b"PK\x03\x04" + b"\0" * 40, "is not GGUF"),
    ("version 1", b"GGUF" + struct.pack("<IQQ", 1, 0, 0), "version 1"),
    ("empty", b"", "magic needs 4 bytes"),
    # 53 bytes that declare a u8 array of 2^60 elements: refused before anything is allocated.
    ("2^60 array", b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + _s("x") + struct.pack("<IIQ", ARRAY, U8, 1 << 60),
     "declares 1152921504606846976 elements"),
    ("2^40 strings", b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + _s("x") + struct.pack("<IIQ", ARRAY, STRING, 1 << 40),
     "strings"),
    ("a key count that cannot fit", b"GGUF" + struct.pack("<IQQ", 3, 0, 1 << 62), "cannot fit"),
    ("a huge key", b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 1 << 50) + b"\0" * 32, "declares"),
    ("a huge value", b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + _s("k") + struct.pack("<IQ", STRING, 1 << 40)
     + b"\0" * 32, "declares 1099511627776 bytes"),
    ("unknown value type", gguf([_kv("x", 77, b"")]), "unknown value type 77"),
    ("five dimensions", gguf(LLAMA, [tensor("t", [1, 1, 1, 1, 1])]), "5 dimensions"),
    ("unknown tensor type", gguf(LLAMA, [tensor("t", [32], 99)]), "ggml type 99"),
    ("truncated data", gguf(LLAMA, [tensor("token_embd.weight", [64, 100])]), "truncated"),
    ("block_count 0", gguf([LLAMA[0], _kv("llama.block_count", U32, struct.pack("<I", 0))] + LLAMA[2:]),
     "block_count = 0"),
    ("negative block_count", gguf([LLAMA[0], _kv("llama.block_count", I32, struct.pack("<i", -3))] + LLAMA[2:]),
     "block_count = -3"),
    ("string head count", gguf(LLAMA[:2] + [_kv("llama.attention.head_count", STRING, _s("32"))] + LLAMA[3:]),
     "head_count = '32'"),
    ("no architecture", gguf(LLAMA[1:]), "no general.architecture"),
    ("alignment not a power of two", gguf(LLAMA + [_kv("general.alignment", U32, struct.pack("<I", 24))]),
     "alignment 24"),
])
def test_hostile_headers_are_one_clear_error_in_bounded_memory(tmp_path, name, data, needle):
    path = write(tmp_path, data)
    tracemalloc.start()
    try:
        with pytest.raises(LlmhostError) as caught:
            gguf_header.read(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20  # nothing a header declares is allocated before it is checked
    message = str(caught.value)
    assert needle in message and "\n" not in message and path in message


def test_a_directory_is_not_a_model(tmp_path):
    with pytest.raises(LlmhostError, match="is not a file"):
        gguf_header.read(str(tmp_path))
