"""A test git code host (tests and demo only): read-only smart HTTP over HTTPS via `git http-backend`.

    python -m scripts.lab.demo.codehost --listen ADDR --port 443 --cert C --key K --root DIR

Serves the bare repositories under DIR (`DIR/<name>.git`) the way a code host's HTTPS endpoint
does, so `git clone https://HOST/<name>.git` through the IDE's egress proxy is a real clone: the
git protocol itself comes from Debian's `git http-backend` (CGI), run once per request with the
CGI variables it reads; this module only speaks HTTP/TLS and relays. Prints `ready` when bound.

Read-only: `git-receive-pack` (push) is refused with 403 before the backend runs (the backend
would also refuse an unauthenticated push). A path outside an existing bare repository is 404.
Requests are logged to stderr as `codehost: METHOD PATH STATUS`.

Not modelled (not proven by tests using it): authentication, push, LFS, redirects, rate
limits, and anything a real forge's web UI or API does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from scripts.lab.tls_server import https_server, run_stand_in, stand_in_parser

README_TEXT = "hcs demo repository: cloned through the IDE's egress proxy\n"
_COMMIT_ENV = {  # a fixed identity and date: the same repository content gives the same commit
    "GIT_AUTHOR_NAME": "hcs demo", "GIT_AUTHOR_EMAIL": "demo@hcs.invalid", "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z",
    "GIT_COMMITTER_NAME": "hcs demo", "GIT_COMMITTER_EMAIL": "demo@hcs.invalid", "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
}


class CodeHostError(RuntimeError):
    """The code host cannot run or make a repository; the message says why."""


def _git(*argv: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    git = shutil.which("git")
    if git is None:
        raise CodeHostError("git is not on PATH (Debian: apt-get install git)")
    proc = subprocess.run([git, *argv], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise CodeHostError(f"git {' '.join(argv)} failed: {proc.stderr.strip()}")
    return proc.stdout.strip()


def http_backend() -> Path:
    """Debian's `git http-backend` (in git's exec path), or a clear error."""
    backend = Path(_git("--exec-path")) / "git-http-backend"
    if not os.access(backend, os.X_OK):
        raise CodeHostError(f"{backend} is missing: the code host needs git's http-backend (Debian package git)")
    return backend


def make_repo(root: Path, name: str, files: dict[str, str] | None = None) -> str:
    """Create the bare repository `root/<name>.git` with one commit of `files` on `main`; return the commit id.

    Default content: `README.md` holding `README_TEXT`, so a test can check what a clone got.
    """
    files = files if files is not None else {"README.md": README_TEXT}
    bare = root / f"{name}.git"
    if bare.exists():
        raise CodeHostError(f"{bare} exists already")
    env = {**os.environ, **_COMMIT_ENV, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        _git("init", "-q", "-b", "main", str(work), env=env)
        for relative, text in files.items():
            (work / relative).parent.mkdir(parents=True, exist_ok=True)
            (work / relative).write_text(text)
        _git("add", "-A", cwd=work, env=env)
        _git("commit", "-q", "-m", f"{name}: initial content", cwd=work, env=env)
        root.mkdir(parents=True, exist_ok=True)
        _git("clone", "-q", "--bare", str(work), str(bare), env=env)
    _git("update-server-info", cwd=bare, env=env)
    return _git("rev-parse", "HEAD", cwd=bare, env=env)


def _parse_cgi(output: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
    """Split a CGI response into status, headers and body (`Status:` header, default 200)."""
    for separator in (b"\r\n\r\n", b"\n\n"):
        head, found, body = output.partition(separator)
        if found:
            break
    else:
        raise CodeHostError("http-backend answered without a header block")
    status, headers = 200, []
    for line in head.decode("latin-1").splitlines():
        name, _, value = line.partition(":")
        if name.strip().lower() == "status":
            status = int(value.split()[0])
        elif name.strip():
            headers.append((name.strip(), value.strip()))
    return status, headers, body


class Handler(BaseHTTPRequestHandler):
    root: Path
    backend: Path
    protocol_version = "HTTP/1.1"
    server_version = "hcs-codehost-stand-in"

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        print(f"codehost: {self.command} {urlsplit(self.path).path} {code}", file=sys.stderr, flush=True)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _plain(self, status: int, text: str) -> None:
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _repository(self, path: str) -> Path | None:
        """The bare repository a request path is inside, if it exists under root."""
        parts = [p for p in path.split("/") if p]
        if not parts or not parts[0].endswith(".git") or any(p in (".", "..") for p in parts):
            return None
        repo = self.root / parts[0]
        return repo if (repo / "HEAD").is_file() and (repo / "objects").is_dir() else None

    def _handle(self) -> None:
        url = urlsplit(self.path)
        path = unquote(url.path)
        body = self._body() if self.command == "POST" else b""
        if "git-receive-pack" in path or "service=git-receive-pack" in url.query:
            self._plain(403, "read-only code host: push is not accepted\n")
            return
        if self._repository(path) is None:
            self._plain(404, "no such repository\n")
            return
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_PROJECT_ROOT": str(self.root), "GIT_HTTP_EXPORT_ALL": "1",
            "GATEWAY_INTERFACE": "CGI/1.1", "SERVER_PROTOCOL": "HTTP/1.1", "REQUEST_METHOD": self.command,
            "PATH_INFO": path, "QUERY_STRING": url.query, "REMOTE_ADDR": self.client_address[0],
            "CONTENT_TYPE": self.headers.get("Content-Type", ""), "CONTENT_LENGTH": str(len(body)),
        }
        for header in ("Content-Encoding", "Git-Protocol"):  # gzip'd requests; protocol v2
            if self.headers.get(header):
                env["HTTP_" + header.upper().replace("-", "_")] = self.headers[header]
        proc = subprocess.run([str(self.backend)], input=body, env=env, capture_output=True, check=False)
        if proc.returncode != 0 and not proc.stdout:
            self._plain(500, f"http-backend failed: {proc.stderr.decode(errors='replace')}")
            return
        status, headers, payload = _parse_cgi(proc.stdout)
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_HEAD = _handle

    def _not_allowed(self) -> None:
        self.send_response(405)
        self.send_header("Allow", "GET, HEAD, POST")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_PROPFIND = do_MKCOL = _not_allowed


def make_server(root: Path, host: str, port: int, cert: str, key: str) -> ThreadingHTTPServer:
    """The HTTPS server (TLS 1.2+) for the repositories under `root`; `serve_forever()` runs it."""
    if not root.is_dir():
        raise CodeHostError(f"repository root {root} does not exist")
    for needed in (cert, key):
        if not Path(needed).is_file():
            raise CodeHostError(f"TLS file {needed} does not exist")
    handler = type("BoundHandler", (Handler,), {"root": root.resolve(), "backend": http_backend()})
    return https_server(handler, host, port, cert, key)


def main(argv: list[str] | None = None) -> int:
    parser = stand_in_parser("A read-only git code host over HTTPS (tests and demo only).")
    parser.add_argument("--root", required=True, type=Path, help="directory holding <name>.git bare repositories")
    args = parser.parse_args(argv)
    return run_stand_in("codehost", lambda: make_server(args.root, args.listen, args.port, args.cert, args.key),
                        (CodeHostError, OSError))


if __name__ == "__main__":
    sys.exit(main())
