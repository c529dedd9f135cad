"""A local HTTP server on 127.0.0.1 serving bytes with Range support; it can cut the first response short."""
from __future__ import annotations

import contextlib
import http.server
import re
import threading
from typing import Iterator


class Site:
    """What the server serves: path -> bytes, and how it misbehaves."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut_first_after: dict[str, int] = {}  # path -> bytes sent before the first response is dropped
        self.ignore_range = False
        self.requests: list[tuple[str, str]] = []  # (path, Range header)
        self.url = ""


@contextlib.contextmanager
def serve(site: Site) -> Iterator[Site]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # quiet
            pass

        def do_GET(self) -> None:
            rng = self.headers.get("Range", "")
            site.requests.append((self.path, rng))
            data = site.files.get(self.path)
            if data is None:
                self.send_error(404, "Not Found")
                return
            start = 0
            m = re.match(r"bytes=(\d+)-$", rng)
            if m and not site.ignore_range:
                start = int(m.group(1))
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            cut = site.cut_first_after.pop(self.path, None)
            if cut is not None:
                self.wfile.write(body[:cut])
                self.wfile.flush()
                self.connection.shutdown(2)  # the connection drops mid-download
                return
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    site.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield site
    finally:
        server.shutdown()
        server.server_close()
