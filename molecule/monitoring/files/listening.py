"""Print each listening TCP socket as ADDRESS:PORT (from /proc/net/tcp and tcp6: the images have no ss)."""
import ipaddress

for name, size in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
    try:
        lines = open(name).read().splitlines()[1:]
    except OSError:
        continue
    for line in lines:
        fields = line.split()
        if fields[3] != "0A":  # TCP_LISTEN
            continue
        hex_addr, hex_port = fields[1].split(":")
        raw = bytes.fromhex(hex_addr)
        # The kernel prints each 32-bit word in host (little-endian) order.
        raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
        addr = ipaddress.ip_address(raw)
        print(f"{addr if size == 4 else '[' + str(addr) + ']'}:{int(hex_port, 16)}")
