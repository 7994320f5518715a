from __future__ import annotations

import requests


def test_a_file_is_downloaded_through_a_real_redirect(live_director, file_servers):
    origin = file_servers({"/test/hello.txt": b"hello world\n"})
    live_director.register("origin-a", "origin", origin.url)
    answer = requests.get(f"{live_director.url}/api/v1.0/director/origin/test/hello.txt", timeout=5)
    assert answer.status_code == 200
    assert answer.content == b"hello world\n"
    assert answer.history[0].status_code == 307
    assert answer.history[0].headers["Location"] == f"{origin.url}/test/hello.txt"
