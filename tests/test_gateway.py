"""The TLS gateway: Debian's nginx and njs module (unpacked by scripts/debian-tools.sh), configured by the
gateway role's own templates (rendered by Ansible), in front of the real llama-server with the real Gemma
model. Clients are the official OpenAI client, curl-like raw requests and openssl s_client.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import _free_port, debian_tools
from llmhost import knowledge
from llmhost.errors import LlmhostError
from llmhost.gateway import clients as gateway_clients
from llmhost.gateway import keys
from llmhost.main import cli

ROOT = Path(__file__).parent.parent
ALIAS = "gemma-test"  # the alias the shared llama-server fixture serves
CLIENT_NAMES = ("alice", "bob", "dave", "carol", "erin")


@dataclass
class Gateway:
    url: str
    port: int
    cafile: Path
    keys: dict[str, str]
    clients: list[dict]
    audit: Path
    error_log: Path
    conf: Path
    upstream: str

    def audit_lines(self) -> list[dict]:
        return [json.loads(line) for line in self.audit.read_text().splitlines()] if self.audit.exists() else []

    def mark(self) -> int:
        """How many audit lines there are once the earlier requests' lines are all written: nginx writes a line
        just after the client has the whole response, so the previous test's last line may still be on its way."""
        count, deadline = len(self.audit_lines()), time.monotonic() + 5
        while time.monotonic() < deadline:
            time.sleep(0.3)
            now = len(self.audit_lines())
            if now == count:
                break
            count = now
        return count

    def new_lines(self, before: int, count: int) -> list[dict]:
        """The audit lines after the first `before`, once `count` of them are there: nginx writes a request's
        line just after the client has the whole response."""
        deadline = time.monotonic() + 10
        while len(self.audit_lines()) < before + count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.audit_lines()[before:]


def _render(conf: Path, variables: dict) -> None:
    extra = conf.parent / "vars.json"
    extra.write_text(json.dumps(variables))
    subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), str(ROOT / "playbooks" / "gateway-templates.yml"),
                    "-e", f"gateway_render_dir={conf}", "-e", f"@{extra}"],
                   check=True, capture_output=True, cwd=ROOT)


def _self_signed(conf: Path) -> None:
    # The arguments the role's tls.yml gives openssl for the lab's certificate.
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-days", "30", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", str(conf / "tls.key"), "-out", str(conf / "tls.crt")], check=True, capture_output=True)


def _nginx_main(root: Path, tools: Path, conf: Path) -> Path:
    """A main configuration that loads njs and includes the role's file, as Debian's nginx.conf does."""
    temp = "\n".join(f"  {kind}_temp_path {root}/tmp-{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi",
                                                                             "scgi"))
    main = root / "nginx.conf"
    main.write_text(
        f"load_module {tools}/usr/lib/nginx/modules/ngx_http_js_module.so;\n"
        + ("user root root;\n" if os.geteuid() == 0 else "")
        + f"worker_processes 2;\npid {root}/nginx.pid;\nerror_log {root}/error.log info;\nevents {{}}\n"
        f"http {{\n{temp}\n  include {conf}/llmhost-gateway.conf;\n}}\n")
    return main


def _start(server: str, root: Path, **settings) -> tuple[Gateway, subprocess.Popen]:
    """The role's nginx configuration for these clients and settings, rendered and served by Debian's nginx."""
    tools = debian_tools("nginx")
    conf = root / "conf"
    secrets = {name: keys.new_key() for name in CLIENT_NAMES}
    clients = [
        {"name": "alice", "key_sha256": keys.key_sha256(secrets["alice"])},
        {"name": "bob", "key_sha256": keys.key_sha256(secrets["bob"]), "rate_limit": "2r/m"},
        {"name": "dave", "key_sha256": keys.key_sha256(secrets["dave"]), "models": ["another-model"]},
        {"name": "carol", "key_sha256": keys.key_sha256(secrets["carol"]), "revoked": True},
        {"name": "erin", "key_sha256": keys.key_sha256(secrets["erin"])},
    ]
    port = _free_port()
    variables = {"gateway_clients": clients, "gateway_upstream": server, "gateway_port": port,
                 "gateway_listen_addresses": ["127.0.0.1"], "gateway_audit_log": str(root / "audit.log"),
                 "gateway_default_model": ALIAS, "gateway_client_max_body_size": "1m", **settings}
    _render(conf, variables)
    _self_signed(conf)
    nginx = [str(tools / "usr" / "sbin" / "nginx"), "-p", str(root), "-c", str(_nginx_main(root, tools, conf))]
    proc = subprocess.Popen([*nginx, "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"nginx did not start: {proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.1)
    return Gateway(f"https://127.0.0.1:{port}", port, conf / "tls.crt", secrets, clients, root / "audit.log",
                   root / "error.log", conf, server), proc


@pytest.fixture(scope="module")
def gateway(server, tmp_path_factory) -> Gateway:
    gw, proc = _start(server, tmp_path_factory.mktemp("gateway"))
    yield gw
    proc.terminate()
    proc.wait(timeout=10)


def _call(gw: Gateway, path: str, body: bytes | dict | None = None, key: str | None = None,
          authorization: str | None = None, timeout: float = 120) -> tuple[int, dict[str, str], bytes]:
    context = ssl.create_default_context(cafile=str(gw.cafile))
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    request = urllib.request.Request(gw.url + path, data=data, method="POST" if data is not None else "GET")
    request.add_header("Content-Type", "application/json")
    if key is not None:
        request.add_header("Authorization", f"Bearer {key}")
    if authorization is not None:
        request.add_header("Authorization", authorization)
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def _counters(upstream: str) -> dict[str, float]:
    text = urllib.request.urlopen(upstream + "/metrics", timeout=10).read().decode()
    return {m.group(1): float(m.group(2))
            for m in re.finditer(r"^llamacpp:(prompt_tokens_total|tokens_predicted_total|n_decode_total) (\S+)$", text, re.M)}


def _ask(max_tokens: int = 4) -> dict:
    return {"model": ALIAS, "max_tokens": max_tokens, "temperature": 0,
            "messages": [{"role": "user", "content": "Name one planet."}]}


def test_openai_client_streams_through_the_gateway_and_the_audit_line_counts_its_tokens(gateway):
    import httpx2
    import openai

    before = gateway.mark()
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=gateway.keys["alice"], max_retries=0, timeout=120,
                           http_client=httpx2.Client(verify=ssl.create_default_context(cafile=str(gateway.cafile))))
    text, chunks = "", 0
    for chunk in client.chat.completions.create(stream=True, **_ask(12)):
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
            chunks += 1
    assert text.strip() and chunks >= 2
    lines = gateway.new_lines(before, 1)
    assert len(lines) == 1
    line = lines[0]
    assert (line["client"], line["model"], line["status"], line["path"]) == ("alice", ALIAS, 200, "/v1/chat/completions")
    assert line["tls"] in ("TLSv1.2", "TLSv1.3") and re.fullmatch(r"[0-9a-f]{32}", line["request_id"])
    # llama-server's own count of the tokens it streamed, and of the prompt it read.
    assert 1 <= line["completion_tokens"] <= 12 and line["completion_tokens"] >= chunks - 1
    assert line["prompt_tokens"] > 3
    assert "prompt" not in line and "reply" not in line  # content is off unless a site turns it on


def test_non_streaming_reply_usage_matches_the_audit_line(gateway):
    before = gateway.mark()
    status, headers, body = _call(gateway, "/v1/chat/completions", _ask(5), key=gateway.keys["alice"])
    assert status == 200
    usage = json.loads(body)["usage"]
    [line] = gateway.new_lines(before, 1)
    assert (line["prompt_tokens"], line["completion_tokens"]) == (usage["prompt_tokens"], usage["completion_tokens"])
    assert headers["X-Request-Id"] == line["request_id"]


def test_a_site_that_turns_content_logging_on_gets_the_prompt_and_the_reply_cut_at_its_limit(server, tmp_path):
    gw, proc = _start(server, tmp_path, gateway_audit_content=True, gateway_audit_content_limit=120)
    try:
        status, _, body = _call(gw, "/v1/chat/completions", _ask(8), key=gw.keys["alice"])
        assert status == 200
        reply = json.loads(body)["choices"][0]["message"]["content"]
        [line] = gw.new_lines(0, 1)
        assert line["prompt"] == json.dumps(_ask(8))[:120] and len(line["prompt"]) == 120
        assert line["reply"] == reply[:120] and line["completion_tokens"] == json.loads(body)["usage"]["completion_tokens"]
        # Streamed, the reply is assembled from the events' deltas.
        _, _, streamed = _call(gw, "/v1/chat/completions", {**_ask(8), "stream": True}, key=gw.keys["alice"])
        events = [json.loads(line[5:]) for line in streamed.decode().splitlines() if line.startswith("data: {")]
        text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"])
        assert text and gw.new_lines(1, 1)[-1]["reply"] == text[:120]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.parametrize("auth", [None, "wrong", "revoked", "basic", "spaces", "huge", "no-scheme"])
def test_refused_keys_get_401_and_the_model_generates_nothing(gateway, auth):
    authorization = {
        None: None,
        "wrong": f"Bearer {keys.new_key()}",
        "revoked": f"Bearer {gateway.keys['carol']}",
        "basic": "Basic " + gateway.keys["alice"],
        "spaces": f"Bearer {gateway.keys['alice']} trailing words",
        "huge": "Bearer " + "k" * 600,
        "no-scheme": gateway.keys["alice"],
    }[auth]
    before, lines_before = _counters(gateway.upstream), gateway.mark()
    status, headers, body = _call(gateway, "/v1/chat/completions", _ask(), authorization=authorization)
    assert status == 401 and json.loads(body)["error"]["code"] == "invalid_api_key"
    assert headers.get("WWW-Authenticate", "").startswith("Bearer")
    assert _counters(gateway.upstream) == before
    [line] = gateway.new_lines(lines_before, 1)
    assert line["status"] == 401 and line["client"] is None
    if auth == "revoked":
        assert line["revoked_client"] == "carol"


def test_revoking_one_client_takes_effect_at_once_and_leaves_the_others(gateway):
    before = gateway.mark()
    assert _call(gateway, "/v1/models", key=gateway.keys["erin"])[0] == 200
    clients = [dict(c, revoked=True) if c["name"] == "erin" else c for c in gateway.clients]
    registry = gateway_clients.registry(clients)
    (gateway.conf / "clients.json").write_text(json.dumps(registry["clients_json"]))
    try:
        assert _call(gateway, "/v1/models", key=gateway.keys["erin"])[0] == 401
        assert _call(gateway, "/v1/models", key=gateway.keys["alice"])[0] == 200
        assert [line.get("revoked_client") for line in gateway.new_lines(before, 3)] == [None, "erin", None]
    finally:
        (gateway.conf / "clients.json").write_text(json.dumps(gateway_clients.registry(gateway.clients)["clients_json"]))


def test_a_client_over_its_rate_limit_gets_429(gateway):
    lines_before = gateway.mark()
    first = _call(gateway, "/v1/chat/completions", _ask(2), key=gateway.keys["bob"])
    before = _counters(gateway.upstream)
    second = _call(gateway, "/v1/chat/completions", _ask(2), key=gateway.keys["bob"])
    assert first[0] == 200
    assert second[0] == 429 and json.loads(second[2])["error"]["code"] == "rate_limit_exceeded"
    assert _counters(gateway.upstream) == before
    assert [(line["client"], line["status"]) for line in gateway.new_lines(lines_before, 2)] == [("bob", 200), ("bob", 429)]
    # Other clients are not limited by bob's rate.
    assert _call(gateway, "/v1/models", key=gateway.keys["alice"])[0] == 200


def test_model_lists_are_enforced_from_the_request_body(gateway):
    before = gateway.mark()
    status, _, body = _call(gateway, "/v1/chat/completions", _ask(), key=gateway.keys["dave"])
    assert status == 403 and json.loads(body)["error"]["code"] == "model_not_allowed"
    assert gateway.new_lines(before, 1)[0]["model"] == ALIAS
    # A body the gateway cannot read cannot be checked against the list: refused, not passed on.
    status, _, body = _call(gateway, "/v1/chat/completions", b"[" * 5000, key=gateway.keys["dave"])
    assert status == 400 and json.loads(body)["error"]["code"] == "invalid_json"


@pytest.mark.parametrize("path", ["/slots", "/metrics", "/props", "/v1/../slots", "/lora-adapters", "/"])
def test_server_internals_are_not_reachable_through_the_gateway(gateway, path):
    status, _, _ = _call(gateway, path, key=gateway.keys["alice"])
    assert status in (400, 404)


def test_hostile_bodies_get_one_clear_status_and_the_gateway_stays_up(gateway):
    assert _call(gateway, "/v1/chat/completions", b"x" * (2 << 20), key=gateway.keys["alice"])[0] == 413
    assert _call(gateway, "/v1/chat/completions", b"\xff\xfe{not json", key=gateway.keys["alice"])[0] in (400, 500)
    assert _call(gateway, "/v1/chat/completions", b"[" * 100000, key=gateway.keys["alice"])[0] in (400, 500)
    assert _call(gateway, "/v1/chat/completions", _ask(2), key=gateway.keys["alice"])[0] == 200
    assert "[alert]" not in gateway.error_log.read_text()


def test_audit_log_and_error_log_hold_no_key_material(gateway):
    text = gateway.audit.read_text() + gateway.error_log.read_text()
    for secret in gateway.keys.values():
        assert secret not in text
    for line in gateway.audit_lines():
        assert "authorization" not in json.dumps(line).lower()


def test_load_200_requests_from_16_clients_none_lost_one_audit_line_each(gateway):
    before = gateway.mark()

    def one(i: int) -> int:
        body = {"model": ALIAS, "max_tokens": 2, "temperature": 0, "prompt": f"Client {i}: hello"}
        return _call(gateway, "/v1/completions", body, key=gateway.keys["alice"], timeout=300)[0]

    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(one, range(200)))
    assert statuses == [200] * 200
    lines = gateway.new_lines(before, 200)
    assert len(lines) == 200
    assert {line["client"] for line in lines} == {"alice"} and all(line["completion_tokens"] for line in lines)
    assert len({line["request_id"] for line in lines}) == 200


# --- TLS, judged from outside with openssl s_client -----------------------------------------------------

def _s_client(gw: Gateway, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{gw.port}", "-servername", "localhost",
                           "-CAfile", str(gw.cafile), *args], input=b"", capture_output=True, timeout=30)


@pytest.mark.parametrize("version", ["-tls1", "-tls1_1"])
def test_tls_below_1_2_is_refused(gateway, version):
    # SECLEVEL=0 lets this client offer the old protocols: the refusal is the gateway's.
    result = _s_client(gateway, version, "-cipher", "ALL:@SECLEVEL=0")
    assert result.returncode != 0 and b"alert protocol version" in result.stderr


def test_every_tls12_cipher_outside_the_policy_is_refused(gateway):
    """Each TLS 1.2 suite this OpenSSL knows for the gateway's (ECDSA) certificate, offered alone: only the
    policy's suites are accepted (CBC, SHA-1, NULL, static keys are not)."""
    policy = set(knowledge.load("gateway")["tls"]["ciphers"])
    known = subprocess.run(["openssl", "ciphers", "-tls1_2", "ALL:COMPLEMENTOFALL:@SECLEVEL=0"], capture_output=True,
                           text=True, check=True).stdout.strip().split(":")
    candidates = [c for c in known if "ECDSA" in c and not c.startswith("TLS_")]
    assert len([c for c in candidates if c not in policy]) >= 5
    accepted = [c for c in candidates if _s_client(gateway, "-tls1_2", "-cipher", f"{c}:@SECLEVEL=0").returncode == 0]
    assert sorted(accepted) == sorted(c for c in candidates if c in policy)


def test_tls_12_and_13_work_with_the_policy_ciphers_and_the_certificate_verifies_by_fingerprint(gateway):
    policy = knowledge.load("gateway")["tls"]
    ecdsa = [c for c in policy["ciphers"] if "ECDSA" in c]
    for cipher in ecdsa:
        result = _s_client(gateway, "-tls1_2", "-cipher", cipher)
        assert result.returncode == 0 and f"Cipher is {cipher}".encode() in result.stdout, cipher
    assert b"Verify return code: 0 (ok)" in _s_client(gateway, "-tls1_3").stdout
    served = ssl.get_server_certificate(("127.0.0.1", gateway.port))
    fingerprint = subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", str(gateway.cafile)],
                                 capture_output=True, text=True, check=True).stdout.split("=", 1)[1].strip()
    digest = hashlib.sha256(ssl.PEM_cert_to_DER_cert(served)).hexdigest().upper()
    assert ":".join(digest[i:i + 2] for i in range(0, 64, 2)) == fingerprint


def test_http2_is_offered(gateway):
    result = _s_client(gateway, "-alpn", "h2,http/1.1")
    assert b"ALPN protocol: h2" in result.stdout


# --- keys and clients -----------------------------------------------------------------------------------

def test_key_new_prints_the_key_once_and_its_digest():
    result = CliRunner().invoke(cli, ["key", "new", "analytics", "--json"])
    out = json.loads(result.output)
    assert result.exit_code == 0 and out["name"] == "analytics"
    assert out["key"].startswith("llmh_") and len(out["key"]) >= 40
    assert out["key_sha256"] == hashlib.sha256(out["key"].encode()).hexdigest()
    text = CliRunner().invoke(cli, ["key", "new", "analytics"]).output
    assert text.count("llmh_") == 1 and "key_sha256: " in text
    assert CliRunner().invoke(cli, ["key", "hash"], input=out["key"] + "\n").output.strip() == out["key_sha256"]


@pytest.mark.parametrize("argv, stdin, expected", [
    (["key", "new", "bad name"], None, "client name 'bad name'"),
    (["key", "new", "-x"], None, "No such option"),
    (["key", "hash"], "", "no key on standard input"),
    (["key", "hash"], "short", "the key is 5 characters long"),
    (["key", "hash"], "has space inside a long enough key", "spaces, control"),
])
def test_key_bad_input_is_one_line(argv, stdin, expected):
    result = CliRunner().invoke(cli, argv, input=stdin)
    assert result.exit_code == 2 and expected in result.output
    assert "Traceback" not in result.output


GOOD = "a" * 64


@pytest.mark.parametrize("clients, expected", [
    ({"name": "x"}, "gateway_clients is a dict"),
    (["alice"], "gateway_clients[0] is a str"),
    ([{"name": "a b", "key_sha256": GOOD}], "gateway_clients[0].name 'a b'"),
    ([{"name": "a", "key_sha256": "llmh_plaintextkey"}], "key_sha256 'llmh_plaintextkey'"),
    ([{"name": "a", "key_sha256": GOOD.upper()}], "64 lowercase hex"),
    ([{"name": "a", "key_sha256": GOOD}, {"name": "a", "key_sha256": "b" * 64}], "the name is given twice"),
    ([{"name": "a", "key_sha256": GOOD}, {"name": "b", "key_sha256": GOOD}], "another client's too"),
    ([{"name": "a", "key_sha256": GOOD, "rate_limit": "10/s"}], "rate_limit '10/s'"),
    ([{"name": "a", "key_sha256": GOOD, "burst": 5}], "burst 5 without a rate_limit"),
    ([{"name": "a", "key_sha256": GOOD, "rate_limit": "1r/s", "burst": -1}], "burst -1"),
    ([{"name": "a", "key_sha256": GOOD, "models": "gemma"}], "models 'gemma'"),
    ([{"name": "a", "key_sha256": GOOD, "revoked": "yes"}], "revoked 'yes'"),
    ([{"name": "a", "key_sha256": GOOD, "key": "secret"}], "unknown field(s) key"),
])
def test_bad_clients_are_refused_whole_naming_the_value(clients, expected):
    with pytest.raises(LlmhostError) as caught:
        gateway_clients.registry(clients)
    assert expected in str(caught.value) and "\n" not in str(caught.value)


def test_registry_splits_active_revoked_and_rate_limited_clients():
    reg = gateway_clients.registry([
        {"name": "a", "key_sha256": "a" * 64, "rate_limit": "60r/m", "burst": 5, "models": ["m"]},
        {"name": "b", "key_sha256": "b" * 64, "revoked": True, "rate_limit": "1r/s"},
        {"name": "c", "key_sha256": "c" * 64},
    ])
    assert reg["clients_json"] == {"clients": {"a" * 64: {"name": "a", "models": ["m"]},
                                               "c" * 64: {"name": "c", "models": []}},
                                   "revoked": {"b" * 64: "b"}}
    assert reg["rate_limited"] == [{"name": "a", "rate_limit": "60r/m", "burst": 5}]
    assert reg["names"] == ["a", "c"]


# --- preflight's gateway checks (the verify stage runs them on every host) -------------------------------

def _cert(tmp_path: Path, days: int) -> bytes:
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-days", str(days), "-subj", "/CN=gw", "-keyout", str(tmp_path / "k.pem"), "-out",
                    str(tmp_path / "c.pem")], check=True, capture_output=True)
    return (tmp_path / "c.pem").read_bytes()


def _listeners(*addresses: str) -> tuple[list[socket.socket], dict[str, str]]:
    """Real listening sockets, and /proc/net/tcp{,6} as the kernel then shows them."""
    socks = []
    for address in addresses:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family)
        sock.bind((address, 0))
        sock.listen()
        socks.append(sock)
    tables = {p: Path(p).read_text() for p in ("/proc/net/tcp", "/proc/net/tcp6")}
    return socks, tables


def test_sockets_parser_reads_the_kernels_tables():
    from llmhost.host.parsers import sockets

    socks, tables = _listeners("127.0.0.1", "0.0.0.0", "::1")
    try:
        found = {entry for text in tables.values() for entry in sockets.listening(text)}
        ports = [s.getsockname()[1] for s in socks]
        assert ("127.0.0.1", ports[0]) in found and ("0.0.0.0", ports[1]) in found and ("::1", ports[2]) in found
        assert sockets.is_loopback("::1") and not sockets.is_loopback("0.0.0.0")
    finally:
        for sock in socks:
            sock.close()


def _gateway_snapshot(snap, tables: dict[str, str], upstream_port: int, cert: bytes | None):
    from conftest import replay

    fact = {"certificate": "/etc/nginx/llmhost/tls.crt", "upstream": f"http://127.0.0.1:{upstream_port}", "port": 443}
    files = {"/etc/ansible/facts.d/llmhost_gateway.fact": json.dumps(fact), **tables}
    if cert is not None:
        files["/etc/nginx/llmhost/tls.crt"] = cert
    return replay(snap(files))


def test_model_server_listening_beyond_loopback_fails_and_loopback_passes(snap):
    from conftest import status

    socks, tables = _listeners("127.0.0.1", "0.0.0.0")
    try:
        loopback, everywhere = (s.getsockname()[1] for s in socks)
        assert status(_gateway_snapshot(snap, tables, loopback, b""), "gateway.model_server_exposed") == "pass"
        assert status(_gateway_snapshot(snap, tables, everywhere, b""), "gateway.model_server_exposed") == "fail"
        assert status(_gateway_snapshot(snap, tables, _free_port(), b""), "gateway.model_server_exposed") == "warn"
    finally:
        for sock in socks:
            sock.close()


def test_certificate_expiry_is_judged_from_the_file(snap, tmp_path, monkeypatch):
    from conftest import results, status
    from llmhost.checks import gateway as checks

    cert = _cert(tmp_path, 90)
    report = _gateway_snapshot(snap, {}, 8080, cert)
    assert status(report, "gateway.certificate") == "pass"
    data = results(report, "gateway.certificate")[0].data
    expected = subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-enddate"],
                              input=cert, capture_output=True, check=True).stdout.decode()
    assert data["fingerprint_sha256"] in expected and 89 <= data["days_left"] <= 90
    real_now = checks._now()
    monkeypatch.setattr(checks, "_now", lambda: real_now + dt.timedelta(days=75))
    assert status(_gateway_snapshot(snap, {}, 8080, cert), "gateway.certificate") == "warn"
    monkeypatch.setattr(checks, "_now", lambda: real_now + dt.timedelta(days=91))
    assert status(_gateway_snapshot(snap, {}, 8080, cert), "gateway.certificate") == "fail"


@pytest.mark.parametrize("content", [b"", b"not a certificate", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----",
                                     b"-----BEGIN CERTIFICATE-----\n" + b"MIIB" * 40 + b"\n-----END CERTIFICATE-----"])
def test_unreadable_certificates_fail_in_one_line(snap, content):
    from conftest import results

    found = results(_gateway_snapshot(snap, {}, 8080, content), "gateway.certificate")
    assert [r.status for r in found] == ["fail"] and "\n" not in found[0].message


def test_gateway_checks_skip_hosts_without_a_gateway(snap):
    from conftest import replay, status

    report = replay(snap())
    assert status(report, "gateway.certificate") == "skip" and status(report, "gateway.model_server_exposed") == "skip"


def test_the_lab_key_is_made_once_when_both_lab_hosts_ask_at_the_same_time(tmp_path):
    # Ansible evaluates the lab inventory's key_sha256 for both hosts at once on a fresh machine.
    env = {**os.environ, "LLMHOST_CACHE": str(tmp_path)}
    runs = [subprocess.Popen(["bash", str(ROOT / "scripts" / "lab-key.sh")], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outputs = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0] * 4, outputs
    key = (tmp_path / "lab" / "lab-team.key").read_text().strip()
    assert {out.strip() for out, _ in outputs} == {hashlib.sha256(key.encode()).hexdigest()}
    assert (tmp_path / "lab" / "lab-team.key").stat().st_mode & 0o777 == 0o600
    assert [p.name for p in (tmp_path / "lab").iterdir() if p.name.startswith("lab-team.key")] == ["lab-team.key"]
