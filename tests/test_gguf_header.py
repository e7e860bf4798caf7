"""llmhost's own GGUF header reader: the same answers as the gguf package on the real Gemma 3 270M file,
and one clear error, in bounded time and memory, for every hostile header."""

from __future__ import annotations

import struct
import tracemalloc
from pathlib import Path

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


class _RangeServer:
    """Files over HTTP on 127.0.0.1, honouring Range as Hugging Face's CDN does (or not, when told);
    counts the bytes it served."""

    def __init__(self, files: dict[str, bytes | Path], ranges: bool = True):
        import http.server
        import re
        import threading

        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the stdlib's name
                source = files.get(self.path.lstrip("/"))
                if source is None:
                    self.send_error(404)
                    return
                size = source.stat().st_size if isinstance(source, Path) else len(source)
                wanted = re.fullmatch(r"bytes=(\d+)-(\d+)", self.headers.get("Range", ""))
                start, end = (int(wanted[1]), min(int(wanted[2]), size - 1)) if ranges and wanted else (0, size - 1)
                if isinstance(source, Path):  # read only the range: a sparse 380 GB model stays unread
                    with source.open("rb") as handle:
                        handle.seek(start)
                        body = handle.read(end + 1 - start)
                else:
                    body = source[start:end + 1]
                if ranges and wanted:
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                server.served += len(body)

            def log_message(self, *args):
                pass

        self.served = 0
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()


def test_a_remote_gguf_gives_the_local_answer_from_its_header_bytes_alone(gemma):
    local = gguf_header.read(str(gemma))
    with _RangeServer({"gemma.gguf": gemma}) as server:
        remote = gguf_header.read(f"{server.url}/gemma.gguf")
    assert {k: v for k, v in remote.items() if k not in ("fetched_bytes", "requests")} == local
    assert remote["fetched_bytes"] == server.served
    # This 253 MB model's 262,144-token vocabulary alone is 1.7 % of the file; a 7B model's header is ~0.2 %.
    assert remote["fetched_bytes"] < 0.02 * local["file_bytes"]


def test_a_server_that_ignores_range_is_refused_before_the_file_travels(gemma):
    with _RangeServer({"gemma.gguf": b"GGUF" + b"\0" * 5_000_000}, ranges=False) as server:
        with pytest.raises(LlmhostError, match="not served in byte ranges") as caught:
            gguf_header.read(f"{server.url}/gemma.gguf")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("name,needle", [("missing.gguf", "HTTP 404"), ("tiny.gguf", "magic needs 4 bytes")])
def test_remote_failures_are_one_line(name, needle):
    with _RangeServer({"tiny.gguf": b"GG"}) as server:
        with pytest.raises(LlmhostError, match=needle):
            gguf_header.read(f"{server.url}/{name}")


def test_a_split_model_sums_its_shards_local_and_remote(tmp_path):
    first = gguf(LLAMA + [_kv("split.count", U32, struct.pack("<I", 2))],
                 [tensor("token_embd.weight", [64, 100], 0, 0)], pad_data=64 * 100 * 4)
    second = gguf([_kv("split.count", U32, struct.pack("<I", 2))], [tensor("blk.0.attn_q.weight", [64, 64], 0, 0)],
                  pad_data=64 * 64 * 4)
    files = {"m-00001-of-00002.gguf": first, "m-00002-of-00002.gguf": second}
    for name, data in files.items():
        write(tmp_path, data, name)
    local = gguf_header.read(str(tmp_path / "m-00001-of-00002.gguf"))
    assert local["shards"] == 2 and local["weight_bytes"] == (64 * 100 + 64 * 64) * 4
    assert local["file_bytes"] == len(first) + len(second)
    with _RangeServer(files) as server:
        remote = gguf_header.read(f"{server.url}/m-00001-of-00002.gguf")
    assert remote["weight_bytes"] == local["weight_bytes"] and remote["shards"] == 2
    with pytest.raises(LlmhostError, match="give the first shard"):
        gguf_header.read(str(tmp_path / "m-00002-of-00002.gguf"))
