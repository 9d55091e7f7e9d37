"""Who one client is: the key that the login throttle and the live index's share count by.

One IPv4 address is one client; so is one IPv6 /64, the smallest prefix an ISP delegates to a
customer (RFC 6177), whose 2^64 addresses one machine can rotate through at no cost. An
IPv4-mapped IPv6 address (``::ffff:192.0.2.1``, a dual-stack socket's view) is its IPv4 client.
"""

from __future__ import annotations

import ipaddress

IPV6_CLIENT_PREFIX = 64


def client_of(address: str | None) -> str:
    """Return the client key of a remote address: IPv4 as is, IPv6 as its /64 network.

    Anything that is not an IP address (a Unix socket's peer, none at all) is its own client,
    so that the callers' counts still apply to it.
    """
    if not address:
        return "unknown"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        network = ipaddress.IPv6Network((ip, IPV6_CLIENT_PREFIX), strict=False)
        return str(network)
    return str(ip)
