"""Post 100,000-field login bodies (~0.9 MB each) from N clients for D seconds.

``python -m benchmarks.field_flood URL CLIENTS SECONDS`` prints one line:
``FLOOD sent=<n> refused_413=<n> closed=<n> other=<n>``. Before per-form limits each body was
parsed on the event loop (~0.27 s of loop time); now each is refused with 413 from its
Content-Length, often before the client has sent it all (then the server closes the connection
and the client sees no status: "closed").
"""

from __future__ import annotations

import sys
import threading
import time

import httpx

BODY = "&".join(f"f{n}=" for n in range(100_000)).encode()
HEADERS = {"Content-Type": "application/x-www-form-urlencoded"}


def flood(url: str, stop_at: float, counts: list[int]) -> None:
    """Post the body until ``stop_at``; count 413s, connections closed mid-upload, the rest."""
    with httpx.Client(base_url=url, timeout=30) as client:
        while time.monotonic() < stop_at:
            try:
                response = client.post("/auth/login", content=BODY, headers=HEADERS)
            except httpx.TransportError:
                counts[1] += 1
                continue
            counts[0 if response.status_code == 413 else 2] += 1


def main(argv: list[str]) -> None:
    """Run the clients in threads and print the counts."""
    url, clients, seconds = argv
    stop_at = time.monotonic() + float(seconds)
    counts = [[0, 0, 0] for _ in range(int(clients))]
    threads = [threading.Thread(target=flood, args=(url, stop_at, mine)) for mine in counts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    refused, closed, other = (sum(mine[n] for mine in counts) for n in range(3))
    sent = refused + closed + other
    print(f"FLOOD sent={sent} refused_413={refused} closed={closed} other={other}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
