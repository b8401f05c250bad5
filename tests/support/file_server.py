"""A local HTTP file server for download tests: real sockets, real HTTP, and the failures real servers have."""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FileServer:
    """Serves ``files`` (path -> bytes) on 127.0.0.1 in a background thread.

    ``behaviour[path]`` makes one file misbehave: ``"truncate"`` (announces the full length, sends half, closes)
    or ``"die"`` (sends half, then the whole server shuts down). ``requests`` lists every path asked for.
    """

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.behaviour: dict[str, str] = {}
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                path = self.path.lstrip("/")
                server.requests.append(path)
                if path not in server.files:
                    self.send_error(404, "Not Found")
                    return
                data = server.files[path]
                mode = server.behaviour.get(path)
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                if mode in ("truncate", "die"):
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    if mode == "die":
                        threading.Thread(target=server.stop, daemon=True).start()
                    return
                self.wfile.write(data)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> "FileServer":
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.stop()
        except OSError:
            pass
