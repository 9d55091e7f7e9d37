"""Hammer POST /auth/login from N clients, each with a real CSRF token, for D seconds.

``python -m benchmarks.login_storm URL USERNAME PASSWORD CLIENTS SECONDS`` prints one line:
``LOGINS ok=<n> failed=<n>``. Each login fetches the form first: a login starts a fresh
session, so the previous token is gone.
"""

from __future__ import annotations

import re
import sys
import threading
import time

import httpx

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def hammer(url: str, username: str, password: str, stop_at: float, counts: list[int]) -> None:
    """Log in over and over until ``stop_at``; count successes (index 0) and failures (1)."""
    while time.monotonic() < stop_at:
        with httpx.Client(base_url=url, timeout=30) as client:
            form = client.get("/auth/login")
            match = TOKEN.search(form.text)
            if match is None:
                counts[1] += 1
                continue
            response = client.post(
                "/auth/login",
                data={"username": username, "password": password, "csrf_token": match[1]},
            )
            counts[0 if response.status_code == 302 else 1] += 1


def main(argv: list[str]) -> None:
    """Run the clients in threads and print the counts."""
    url, username, password, clients, seconds = argv
    stop_at = time.monotonic() + float(seconds)
    counts = [[0, 0] for _ in range(int(clients))]
    threads = [
        threading.Thread(target=hammer, args=(url, username, password, stop_at, mine))
        for mine in counts
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ok = sum(mine[0] for mine in counts)
    failed = sum(mine[1] for mine in counts)
    print(f"LOGINS ok={ok} failed={failed}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
