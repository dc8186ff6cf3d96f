"""LaunchPad's example app: a web page that says which release it is (standard library only).

    python3 app.py install   # the install step: writes build-info.txt beside this file
    python3 app.py           # serves on $HOST:$PORT (default 127.0.0.1:8000)

The answer is `$GREETING` (from the deployment's env) and the line the install step wrote,
so a test can tell that the env reached the app and which release serves.
"""

from __future__ import annotations

import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUILD_INFO = HERE / "build-info.txt"


def install() -> None:
    # In a deployment this is the release's directory, named after its commit.
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    BUILD_INFO.write_text(f"release {HERE.name} installed at {stamp}\n")
    print(f"wrote {BUILD_INFO.name}: {BUILD_INFO.read_text().strip()}")


class Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        greeting = os.environ.get("GREETING", "Hello")
        built = BUILD_INFO.read_text().strip() if BUILD_INFO.exists() else "not installed"
        body = f"{greeting} from the LaunchPad example app\n{built}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main() -> None:
    if sys.argv[1:] == ["install"]:
        install()
        return
    host, port = os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "8000"))
    server = ThreadingHTTPServer((host, port), Page)
    print(f"listening on http://{host}:{port}/", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
