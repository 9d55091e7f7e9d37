"""Who one client is: the key that the login throttle and the live index's share count by.

One IPv4 address is one client; so is one IPv6 /64, the smallest prefix an ISP delegates to a
customer (RFC 6177), whose 2^64 addresses one machine can rotate through at no cost. An
IPv4-mapped IPv6 address (``::ffff:192.0.2.1``, a dual-stack socket's view) is its IPv4 client.
"""

from __future__ import annotations

import ipaddress

IPV6_CLIENT_PREFIX = 64
INVALID = "invalid"  # every remote address that is not an IP address: one client


def client_of(address: str | None) -> str:
    """Return the client key of a remote address: IPv4 as is, IPv6 as its /64 network.

    An address with a port (``192.0.2.1:4711``, ``[2001:db8::1]:4711``, as some proxies write
    it) is its address. An IPv6 address that carries an IPv4 one (IPv4-mapped, 6to4, Teredo)
    is that IPv4 client: one IPv4 holder owns 65,536 /64s of 6to4. Anything else that is not
    an IP address (a Unix socket's peer, a proxy's odd value) counts as one client, ``invalid``,
    however it is spelt, so that rotating such values gains nothing.
    """
    if address is None:
        return INVALID
    ip = parsed(address.strip())
    if ip is None:
        return INVALID
    if isinstance(ip, ipaddress.IPv4Address):
        return str(ip)
    embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
    if embedded is not None:
        return str(embedded)
    return str(ipaddress.IPv6Network((ip, IPV6_CLIENT_PREFIX), strict=False))


def parsed(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """Parse an address, with or without a port; None if it is not an IP address."""
    candidates = [address]
    if address.startswith("[") and "]" in address:
        candidates = [address[1 : address.index("]")]]  # [v6] or [v6]:port
    elif address.count(":") == 1:
        candidates.append(address.partition(":")[0])  # v4:port
    for candidate in candidates:
        try:
            return ipaddress.ip_address(candidate)
        except ValueError:
            continue
    return None
