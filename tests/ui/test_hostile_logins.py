"""The login throttle against a guesser who sends the guesses at once: each guess takes its place in the
throttle before the password is checked, so a burst of parallel logins checks no more passwords than the
limit allows (five per user), and the right password among them is refused like the rest. A username an
operator pasted with its line end is refused, not made into a second account that looks like the first."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.procs import ServerProcess, run_cli
from tests.ui.uisupport import PASSWORD, csrf_of

BURST = 24
LIMIT = 5  # LoginThrottle's default per user


def _guess(url: str, password: str) -> int:
    with httpx.Client(base_url=url, timeout=30) as client:
        token = csrf_of(client.get("/ui/login").text)
        data = {"username": "burst-target", "password": password, "csrf_token": token}
        return client.post("/ui/login", data=data).status_code


def test_a_burst_of_parallel_guesses_checks_no_more_passwords_than_the_limit(server: ServerProcess) -> None:
    server.create_user("burst-target", PASSWORD, "ORG_READ_ONLY")
    with ThreadPoolExecutor(BURST) as pool:
        codes = list(pool.map(lambda i: _guess(server.url, f"wrong-guess-{i}"), range(BURST)))
    checked = codes.count(401)
    assert checked <= LIMIT and codes.count(429) == BURST - checked, codes
    assert _guess(server.url, PASSWORD) == 429


def test_a_username_with_a_line_end_is_refused(server: ServerProcess) -> None:
    server.create_user("pasted", PASSWORD, "ORG_READ_ONLY")
    args = ("users", "create", "--username", "pasted\n", "--role", "ORG_READ_ONLY", *server.setup_args())
    done = run_cli(*args, stdin=PASSWORD + "\n")
    assert done.returncode == 1 and "username must be" in done.stdout + done.stderr
    listed = run_cli("users", "list", *server.setup_args())
    assert listed.stdout.count("pasted") == 1, listed.stdout
