"""gateway.*: the TLS gateway the gateway role runs (its local fact says where): its certificate, and
whether clients can reach the model server around it."""

from __future__ import annotations

import datetime as dt
import json
import urllib.parse

from llmhost import knowledge
from llmhost.checks import check, failed, passed, skipped, warned
from llmhost.errors import LlmhostError
from llmhost.gateway import certificate
from llmhost.host.facts import Facts
from llmhost.host.parsers import sockets

FACT = "/etc/ansible/facts.d/llmhost_gateway.fact"
NO_GATEWAY = "no llmhost gateway on this host"


def _gateway(facts: Facts) -> dict | None:
    text = facts.host.read(FACT)
    if text is None:
        return None
    try:
        fact = json.loads(text)
    except ValueError:
        return {}
    return fact if isinstance(fact, dict) else {}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@check("gateway.certificate", "The gateway's TLS certificate is valid for a while yet")
def certificate_expiry(facts: Facts):
    gateway = _gateway(facts)
    if gateway is None:
        yield skipped(NO_GATEWAY)
        return
    path = str(gateway.get("certificate") or "")
    pem = facts.host.read_bytes(path) if path.startswith("/") else None
    if pem is None:
        yield failed(f"the gateway's certificate {path or '(not recorded in ' + FACT + ')'} cannot be read",
                     "run the gateway role again, or put the certificate where gateway_config_dir says")
        return
    try:
        cert = certificate.read(pem, path)
    except LlmhostError as exc:
        yield failed(str(exc), "give the role a PEM certificate (gateway_tls_certificate)")
        return
    days = (cert["not_after"] - _now()).total_seconds() / 86400
    warn_days = knowledge.load("gateway")["certificate"]["warn_days"]
    data = {"path": path, "not_after": cert["not_after"].isoformat(), "days_left": round(days, 1),
            "fingerprint_sha256": cert["fingerprint_sha256"]}
    where = f"{path} (SHA-256 {cert['fingerprint_sha256'][:23]}...)"
    if days <= 0:
        yield failed(f"{where} expired on {cert['not_after']:%Y-%m-%d}: clients refuse the gateway",
                     "renew it and set gateway_tls_certificate/_private_key (or delete tls.crt to remake a "
                     "self-signed one)", **data)
    elif days < warn_days:
        yield warned(f"{where} expires in {days:.0f} days ({cert['not_after']:%Y-%m-%d})",
                     f"renew it before then (warned at {warn_days} days)", **data)
    else:
        yield passed(f"{where} valid until {cert['not_after']:%Y-%m-%d} ({days:.0f} days)", **data)


@check("gateway.model_server_exposed", "The model server is reachable only through the gateway")
def model_server_exposed(facts: Facts):
    gateway = _gateway(facts)
    if gateway is None:
        yield skipped(NO_GATEWAY)
        return
    try:
        port = urllib.parse.urlsplit(str(gateway.get("upstream", ""))).port
    except ValueError:
        port = None
    if not port:
        yield skipped(f"no model server port in {FACT}")
        return
    tables = [facts.host.read(p) for p in ("/proc/net/tcp", "/proc/net/tcp6")]
    if all(t is None for t in tables):
        yield skipped("/proc/net/tcp cannot be read")
        return
    bound = sorted({address for t in tables if t for address, p in sockets.listening(t) if p == port})
    exposed = [a for a in bound if not sockets.is_loopback(a)]
    data = {"port": port, "addresses": bound}
    if exposed:
        yield failed(f"the model server's port {port} listens on {', '.join(exposed)}: clients can reach it around "
                     "the gateway, without a key or an audit line",
                     "serve it on loopback only (inference_host: 127.0.0.1)", **data)
    elif not bound:
        yield warned(f"nothing listens on the model server's port {port}: the gateway has nothing to serve",
                     "systemctl status llmhost-inference", **data)
    else:
        yield passed(f"the model server's port {port} listens on loopback only ({', '.join(bound)})", **data)
