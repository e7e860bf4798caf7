"""Listening TCP sockets from /proc/net/tcp and /proc/net/tcp6 (hosts and images without ss)."""

from __future__ import annotations

import ipaddress

_LISTEN = "0A"


def _address(hex_address: str) -> str:
    raw = bytes.fromhex(hex_address)
    if len(raw) == 4:
        return str(ipaddress.IPv4Address(raw[::-1]))
    # tcp6: four 32-bit words, each in host (little-endian) order.
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
    address = ipaddress.IPv6Address(words)
    return str(address.ipv4_mapped or address)


def listening(text: str) -> list[tuple[str, int]]:
    """(address, port) of every listening socket in a /proc/net/tcp{,6} table; lines that do not parse
    are skipped."""
    found = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 4 or fields[3] != _LISTEN or ":" not in fields[1]:
            continue
        address, _, port = fields[1].partition(":")
        try:
            found.append((_address(address), int(port, 16)))
        except ValueError:
            continue
    return found


def is_loopback(address: str) -> bool:
    return ipaddress.ip_address(address).is_loopback
