"""Read what `plan` and the runtime role need from a GGUF file's header, without loading weights.

A streaming reader over the GGUF layout (magic, version, tensor and key/value counts, key/values,
tensor infos; ggml's gguf.cpp): every count and length is checked against the bytes the file really
has before anything is allocated, so a 53-byte file that declares 2^60 array elements is refused at
once instead of eating memory. Pure Python, no numpy: the engine archive runs it on managed hosts.
Tokenizer vocabularies (hundreds of thousands of strings) are skipped, not kept.
"""

from __future__ import annotations

import math
import re
import struct
import urllib.error
import urllib.request
from functools import cache
from pathlib import Path
from typing import Any, BinaryIO

from llmhost import knowledge
from llmhost.errors import LlmhostError

GGUF_MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
MAX_DIMS = 4                    # GGML_MAX_DIMS
MAX_KEY_BYTES = 1 << 16         # gguf.cpp refuses longer keys too
MAX_STRING_BYTES = 64 << 20     # a chat template is a few KiB; this bounds a hostile one
MAX_KEPT_ARRAY = 1 << 16        # per-layer values are kept; vocabularies are only counted

# GGUF value types: id -> struct format (scalars); 8 = string, 9 = array.
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9


@cache
def ggml_types() -> dict[int, tuple[str, int, int]]:
    """ggml type id -> (name, elements per block, bytes per block), from data/ggml_types.yml."""
    return {int(k): (v[0], int(v[1]), int(v[2])) for k, v in knowledge.load("ggml_types")["types"].items()}


def tensor_bytes(type_id: int, n_elements: int) -> int:
    name, block, size = ggml_types()[type_id]
    return math.ceil(n_elements / block) * size


class _Stream:
    """Bounded reads from a binary file of known size: every length is checked before it is read."""

    def __init__(self, handle: BinaryIO, size: int, label: str):
        self.handle, self.size, self.label = handle, size, label
        self.endian = "<"

    @property
    def left(self) -> int:
        return self.size - self.handle.tell()

    def _fail(self, what: str) -> LlmhostError:
        # Key and tensor names come from the file: control characters are shown escaped, on one line.
        shown = re.sub(r"[\x00-\x1f\x7f-\x9f]", lambda m: repr(m.group())[1:-1], what)
        return LlmhostError(f"model {self.label!r} is a truncated or corrupt GGUF: {shown} at byte {self.handle.tell()}")

    def take(self, count: int, what: str) -> bytes:
        if count < 0 or count > self.left:
            raise self._fail(f"{what} needs {count} bytes, {self.left} left")
        return self.handle.read(count)

    def skip(self, count: int, what: str) -> None:
        if count < 0 or count > self.left:
            raise self._fail(f"{what} needs {count} bytes, {self.left} left")
        self.handle.seek(count, 1)

    def scalar(self, fmt: str, what: str):
        return struct.unpack(self.endian + fmt, self.take(struct.calcsize(fmt), what))[0]

    def string(self, what: str, limit: int = MAX_STRING_BYTES) -> str:
        length = self.scalar("Q", what)
        if length > limit:
            raise self._fail(f"{what} declares {length} bytes (limit {limit})")
        return self.take(length, what).decode("utf-8", "replace")

    def value(self, type_id: int, what: str):
        if type_id in _SCALARS:
            return self.scalar(_SCALARS[type_id], what)
        if type_id == _STRING:
            return self.string(what)
        if type_id == _ARRAY:
            return self.array(what)
        raise self._fail(f"{what} has unknown value type {type_id}")

    def array(self, what: str):
        item_type, count = self.scalar("I", what), self.scalar("Q", what)
        if item_type in _SCALARS:
            width = struct.calcsize(_SCALARS[item_type])
            if count * width > self.left:
                raise self._fail(f"{what} declares {count} elements of {width} bytes, {self.left} bytes left")
            if count > MAX_KEPT_ARRAY:
                self.skip(count * width, what)
                return _Skipped(count)
            return list(struct.unpack(f"{self.endian}{count}{_SCALARS[item_type]}", self.take(count * width, what)))
        if item_type == _STRING:
            if count * 8 > self.left:  # each string has at least its 8-byte length
                raise self._fail(f"{what} declares {count} strings, {self.left} bytes left")
            for _ in range(count):
                self.skip(self.scalar("Q", what), what)
            return _Skipped(count)
        raise self._fail(f"{what} is an array of type {item_type}, which GGUF metadata does not use")


class _Skipped:
    """A long array (a vocabulary) that was counted, not kept."""

    def __init__(self, count: int):
        self.count = count


def _read_header(stream: _Stream) -> tuple[dict[str, Any], list[tuple[str, str, int, list[int]]], int]:
    if stream.take(4, "magic") != GGUF_MAGIC:
        raise LlmhostError(f"model {stream.label!r} is not GGUF: expected b'GGUF' at the start")
    raw = stream.take(4, "version")
    version = struct.unpack("<I", raw)[0]
    if version > 0xFFFF and struct.unpack(">I", raw)[0] <= 0xFFFF:
        stream.endian, version = ">", struct.unpack(">I", raw)[0]
    if version not in (2, 3):
        raise LlmhostError(f"model {stream.label!r} is GGUF version {version}: expected 2 or 3 (version 1 files "
                           "predate llama.cpp's current loader; convert them again)")
    n_tensors, n_kv = stream.scalar("Q", "tensor count"), stream.scalar("Q", "key count")
    # The smallest key/value is 13 bytes and the smallest tensor info 25: counts beyond that are lies.
    if n_kv * 13 > stream.left or n_tensors * 25 > stream.left:
        raise stream._fail(f"{n_kv} keys and {n_tensors} tensors cannot fit in {stream.left} bytes")
    fields: dict[str, Any] = {}
    for _ in range(n_kv):
        key = stream.string("a key", MAX_KEY_BYTES)
        fields[key] = stream.value(stream.scalar("I", f"type of {key}"), key)
    types = ggml_types()
    tensors = []
    ends = []
    for _ in range(n_tensors):
        name = stream.string("a tensor name", MAX_KEY_BYTES)
        dims = stream.scalar("I", f"dimensions of {name}")
        if not 1 <= dims <= MAX_DIMS:
            raise stream._fail(f"tensor {name} has {dims} dimensions (1-{MAX_DIMS})")
        shape = [stream.scalar("Q", f"shape of {name}") for _ in range(dims)]
        type_id, offset = stream.scalar("I", f"type of {name}"), stream.scalar("Q", f"offset of {name}")
        if type_id not in types:
            raise stream._fail(f"tensor {name} has ggml type {type_id}, which this llmhost does not know")
        n_bytes = tensor_bytes(type_id, math.prod(shape))
        tensors.append((name, types[type_id][0], n_bytes, shape))
        ends.append(offset + n_bytes)
    alignment = fields.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
        raise stream._fail(f"general.alignment {alignment!r} is not a power of two")
    data_start = -(-stream.handle.tell() // alignment) * alignment
    return fields, tensors, data_start + max(ends, default=0)


def _count(fields: dict[str, Any], key: str, label: str, required: bool = True, allow_list: bool = False):
    value = fields.get(key)
    if value is None and not required:
        return None
    if allow_list and isinstance(value, list) and value and all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value) and max(value) > 0:
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise LlmhostError(f"model {label!r} has {key} = {value!r} in its GGUF header: expected a positive integer")
    return value


class RemoteFile:
    """A remote GGUF as a seekable file, through HTTP Range requests in CHUNK-sized pieces: only the
    chunks the header walk touches travel (a vocabulary's f32 scores are seeked over, not fetched).
    Bounded: at most MAX_REMOTE_HEADER bytes fetched and TIMEOUT_S per request."""

    CHUNK = 64 * 1024  # ~70 requests for a 6 MB header; smaller chunks fetch little less (measured)
    MAX_REMOTE_HEADER = 128 << 20
    TIMEOUT_S = 30.0

    def __init__(self, url: str):
        self.url, self.pos, self.fetched, self.requests = url, 0, 0, 0
        self.chunks: dict[int, bytes] = {}
        self.size = self._fetch_chunk(0, first=True)

    def _get(self, start: int, end: int) -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(self.url, headers={"Range": f"bytes={start}-{end}",
                                                            "User-Agent": "llmhost-plan"})
        try:
            with urllib.request.urlopen(request, timeout=self.TIMEOUT_S) as answer:  # noqa: S310 - http(s) only
                body = answer.read(end - start + 2)
                return answer.status, {k.lower(): v for k, v in answer.headers.items()}, body
        except urllib.error.HTTPError as exc:
            raise LlmhostError(f"model {self.url!r} answered HTTP {exc.code}: expected the GGUF file") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise LlmhostError(f"model {self.url!r} cannot be read: {getattr(exc, 'reason', exc)}") from None

    def _fetch_chunk(self, index: int, first: bool = False) -> int:
        start = index * self.CHUNK
        if self.fetched + self.CHUNK > self.MAX_REMOTE_HEADER:
            raise LlmhostError(f"model {self.url!r}: its header goes on past {self.MAX_REMOTE_HEADER >> 20} MiB")
        status, headers, body = self._get(start, start + self.CHUNK - 1)
        self.requests += 1
        total = re.fullmatch(r"bytes \d+-\d+/(\d+)", headers.get("content-range", "").strip())
        if status != 206 or not total or len(body) > self.CHUNK:
            raise LlmhostError(f"model {self.url!r} is not served in byte ranges (HTTP {status}, no Content-Range): "
                               "llmhost reads only a remote model's header, so the server must honour Range")
        size = int(total.group(1)) if first else self.size
        if len(body) != min(self.CHUNK, max(0, size - start)):
            raise LlmhostError(f"model {self.url!r} answered {len(body)} bytes for bytes {start}-{start + self.CHUNK - 1} "
                               f"of a {size}-byte file")
        self.fetched += len(body)
        self.chunks[index] = body
        return size

    def read(self, count: int) -> bytes:
        out = bytearray()
        while count > 0 and self.pos < self.size:
            index, offset = divmod(self.pos, self.CHUNK)
            if index not in self.chunks:
                self._fetch_chunk(index)
            piece = self.chunks[index][offset:offset + count]
            if not piece:
                break
            out += piece
            self.pos += len(piece)
            count -= len(piece)
        return bytes(out)

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = offset if whence == 0 else self.pos + offset
        return self.pos

    def tell(self) -> int:
        return self.pos

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.chunks.clear()


_SHARD = re.compile(r"^(?P<stem>.*)-(?P<index>\d{5})-of-(?P<count>\d{5})\.gguf$")


def _one(path: str) -> tuple[dict[str, Any], list, int, dict[str, int]]:
    """One file's header: (fields, tensors, file size, {fetched, requests} for a remote file)."""
    if re.match(r"^https?://", path, re.IGNORECASE):
        with RemoteFile(path) as remote:
            fields, tensors, data_end = _read_header(_Stream(remote, remote.size, path))
            size, traffic = remote.size, {"fetched_bytes": remote.fetched, "requests": remote.requests}
    else:
        file = Path(path)
        if not file.is_file():
            raise LlmhostError(f"model {path!r} is not a file: expected a .gguf file or an http(s) URL")
        size = file.stat().st_size
        try:
            with file.open("rb") as handle:
                fields, tensors, data_end = _read_header(_Stream(handle, size, path))
        except OSError as exc:
            raise LlmhostError(f"model {path!r} cannot be read: {exc.strerror or exc}") from None
        traffic = {}
    if data_end > size:
        raise LlmhostError(f"model {path!r} is truncated: its tensors end at byte {data_end}, the file has {size}")
    return fields, tensors, size, traffic


def read(path: str) -> dict[str, Any]:
    """A local path or an http(s) URL (only the header's bytes are fetched); for a split model
    (NAME-00001-of-00003.gguf) every shard's tensors are summed.
    -> {arch, name, layers, hidden, heads, kv_heads, head_dim, head_dim_v, context, vocab, file_type,
    chat_template, tensors: [(name, type, n_bytes, shape)], weight_bytes, file_bytes, shards, fetched_bytes?}"""
    fields, tensors, size, traffic = _one(path)
    shard = _SHARD.match(path)
    count = int(shard["count"]) if shard else 1
    if shard and (int(shard["index"]) != 1 or not 1 <= count <= 999):
        raise LlmhostError(f"model {path!r} is shard {int(shard['index'])} of {count}: give the first shard (-00001-of-)")
    for index in range(2, count + 1):
        _, more, more_size, more_traffic = _one(f"{shard['stem']}-{index:05d}-of-{shard['count']}.gguf")
        tensors, size = tensors + more, size + more_size
        for key, value in more_traffic.items():
            traffic[key] = traffic.get(key, 0) + value
    header = describe(fields, tensors, size, path)
    header["shards"] = count
    header.update(traffic)
    return header


def _largest(value):
    return max(value) if isinstance(value, list) else value


def describe(fields: dict[str, Any], tensors: list, file_bytes: int, label: str) -> dict[str, Any]:
    """The header's key/values and tensors -> what plan needs, with every count checked."""
    arch = fields.get("general.architecture")
    if not isinstance(arch, str) or not arch:
        raise LlmhostError(f"model {label!r} has no general.architecture in its GGUF header")

    def key(name, **kw):
        return _count(fields, f"{arch}.{name}", label, **kw)

    layers = key("block_count")
    heads = key("attention.head_count", allow_list=True)
    kv_heads = key("attention.head_count_kv", required=False, allow_list=True) or heads
    hidden = key("embedding_length")
    # Per-layer head counts (some architectures) come as lists: size the KV cache by their mean.
    heads_n = max(heads) if isinstance(heads, list) else heads
    if isinstance(kv_heads, list):
        kv_heads = sum(kv_heads) / len(kv_heads)
    head_dim = key("attention.key_length", required=False) or (hidden // heads_n if heads_n else None)
    embd = next((t for t in tensors if t[0] == "token_embd.weight"), None)
    template = fields.get("tokenizer.chat_template")
    kv_lora = key("attention.kv_lora_rank", required=False)
    mla = bool(kv_lora) and key("attention.key_length_mla", required=False) is not None
    return {
        "experts": key("expert_count", required=False), "experts_used": key("expert_used_count", required=False),
        "ff": _largest(key("feed_forward_length", required=False, allow_list=True)),
        "expert_ff": _largest(key("expert_feed_forward_length", required=False, allow_list=True)),
        "swa_window": key("attention.sliding_window", required=False),
        # MLA (DeepSeek): llama.cpp caches one latent head of key_length (kv_lora_rank + rope dims), no V.
        "mla": mla,
        "arch": arch, "name": fields.get("general.name") if isinstance(fields.get("general.name"), str) else None,
        "layers": layers, "hidden": hidden, "heads": heads_n, "kv_heads": kv_heads, "head_dim": head_dim,
        "head_dim_v": key("attention.value_length", required=False) or head_dim,
        "context": key("context_length", required=False),
        "vocab": embd[3][1] if embd and len(embd[3]) > 1 else None,
        "file_type": fields.get("general.file_type"), "chat_template": isinstance(template, str) and bool(template),
        "tensors": tensors, "weight_bytes": sum(t[2] for t in tensors), "file_bytes": file_bytes,
    }
