"""The Host names the boundary can match, and why a TRUSTED_HOSTS entry that cannot never will.

The boundary (middleware/boundary.py) accepts a Host that is a name or IPv4 address, or a
bracketed IPv6 address, with an optional port; it compares the name without its port, in
lower case, to each entry, and to each entry's subdomains if the entry starts with ".". An
entry that is not itself such a name matches no Host at all: every request would get 400.
"""

from __future__ import annotations

import ipaddress
import re
import socket

# The name part of a Host header, as the boundary matches it (case-insensitive). "_" is not a
# DNS host name's, but browsers (the WHATWG URL standard) and container names use it.
HOST_NAME = r"[a-z0-9._-]+|\[[a-f0-9]*:[a-f0-9.:]+\]"
# The characters where IDNA 2003 (Python's "idna" codec) and browsers (UTS 46, as the WHATWG
# URL standard uses it) disagree: the codec maps ß to "ss", a browser sends its own punycode.
DEVIATIONS = re.compile("[\u00df\u03c2\u200c\u200d]")
PORT = re.compile(r"(.*?):[0-9]*")
# What browsers and curl read as an IPv4 address (WHATWG URL): up to four numbers, each decimal,
# octal (a leading 0) or hexadecimal (0x); they send it in its usual dotted-decimal form.
IPV4_NUMBERS = re.compile(r"(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}\.?", re.IGNORECASE)
BARE_IPV6 = re.compile(r"[0-9a-f]*:[0-9a-f.]*:[0-9a-f.:]*", re.IGNORECASE)


def can_match(entry: str) -> bool:
    """Tell whether some Host the boundary accepts matches this entry."""
    return re.fullmatch(HOST_NAME, entry, re.IGNORECASE) is not None


def entry_fault(entry: object) -> str | None:
    """Say why a TRUSTED_HOSTS entry can never match a Host, and how to write it; None if it can."""
    if not isinstance(entry, str):
        return f"{entry!r} is not a text"
    usual = usual_address(entry)
    if usual is not None and usual != entry.lower():
        return (
            f"{entry!r} can never match a Host: an IP address written otherwise than clients"
            f" send it; write {usual!r}"
        )
    if can_match(entry):
        return None
    if not entry.strip():
        return f"{entry!r} is empty: remove it"
    if entry.strip().strip("*.") == "":
        return (
            f"{entry!r} is a wildcard, which matches no Host: to serve every host, set None (null)"
        )
    faults, name = repaired(entry)
    fix = (
        f"write {name!r}"
        if can_match(name)
        else 'a host name has only letters, digits, ".", "-" and "_", or is a bracketed IPv6'
        " address"
    )
    return f"{entry!r} can never match a Host: {', '.join(faults)}; {fix}"


def usual_address(entry: str) -> str | None:
    """Return an IP address entry as clients send it in Host (127.0.0.1, [::1]); None if no IP."""
    name = entry.lower()
    try:
        if name.startswith("[") and name.endswith("]"):
            return f"[{usual_ipv6(ipaddress.IPv6Address(name[1:-1]))}]"
        if IPV4_NUMBERS.fullmatch(name):
            return str(ipaddress.IPv4Address(socket.inet_aton(name.removesuffix("."))))
    except (ValueError, OSError):  # not an address after all: a name's own rules judge it
        return None
    return None


def usual_ipv6(address: ipaddress.IPv6Address) -> str:
    """Return an IPv6 address as browsers write it (WHATWG URL): hexadecimal groups only.

    Python 3.13 writes an IPv4-mapped address with its IPv4 part dotted (::ffff:127.0.0.1);
    browsers and earlier Pythons write ::ffff:7f00:1.
    """
    if address.ipv4_mapped is None:
        return address.compressed
    number = int(address.ipv4_mapped)
    return f"::ffff:{number >> 16:x}:{number & 0xFFFF:x}"


def repaired(entry: str) -> tuple[list[str], str]:
    """Name what keeps an entry from matching, and return the entry without it."""
    faults = []
    name = entry.strip()
    if name != entry:
        faults.append("spaces around it")
    if "://" in name:
        faults.append("a scheme (only the host name is compared)")
        name = name.partition("://")[2]
    if "/" in name:
        faults.append("a path")
        name = name.partition("/")[0]
    if "@" in name:
        faults.append("a user name")
        name = name.rpartition("@")[2]
    if BARE_IPV6.fullmatch(name):
        faults.append("an IPv6 address without brackets (a Host writes it in brackets)")
        name = f"[{name}]"
    elif port := PORT.fullmatch(name.rpartition("]")[2]):
        faults.append("a port (ports are ignored: the name matches any port)")
        name = name[: len(name) - len(port[0]) + len(port[1])]
    if "*" in name:
        faults.append('a wildcard (a leading "." adds every subdomain, and the name itself)')
        name = "." + name.lstrip("*.")
    if not name.isascii():
        ascii_name = punycode(name)
        if ascii_name is None:
            faults.append(
                "letters outside ASCII (a Host is ASCII: write the punycode form a browser"
                " sends, UTS 46, e.g. the idna package's idna.encode(name, uts46=True))"
            )
        else:
            faults.append("letters outside ASCII (a Host is ASCII: browsers send punycode)")
            name = ascii_name
    if any(character.isspace() for character in name):
        faults.append("a space")
    return faults or ["characters no Host name has"], name


def punycode(name: str) -> str | None:
    """Return a name's IDNA (punycode) form, as browsers send it in Host; None if unsure.

    Python's own "idna" codec (IDNA 2003) is used, not the idna package (IDNA 2008 and UTS 46,
    what browsers use), which the app does not depend on for one hint: the two agree except
    on the deviation characters and on names IDNA 2003 cannot encode, which get no guess.
    """
    if DEVIATIONS.search(name):
        return None
    dot = "." if name.startswith(".") else ""
    try:
        return dot + name.removeprefix(dot).encode("idna").decode("ascii")
    except UnicodeError:  # an empty or over-long label
        return None
