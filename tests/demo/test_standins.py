"""The demo's egress stand-ins, each against its real client on 127.0.0.1 (no booted demo needed).

- code host (`codehost.py`): real `git clone` over HTTPS (smart protocol via `git http-backend`),
  push refused, unknown repository 404;
- gallery (`gallery.py`) + test VSIX (`vsix.py`): the real code-server 4.139.1 from the machine's
  cache installs `hcs-test.proof` from the stand-in (query and download seen in its log), and
  from the VSIX file offline;
- what the CLI install does with a forward proxy (env and settings) and which CA settings its
  Node trusts, with a small logging CONNECT proxy written here (no Squid on the test machine).
"""

from __future__ import annotations

import json
import os
import select
import socket
import ssl
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from components.settings.ide import Gallery
from scripts import REPOSITORY
from scripts.lab.demo import codehost, gallery, vsix
from scripts.lab.demo.pki import DemoCA


def _gallery_env(base: str) -> str:
    """EXTENSIONS_GALLERY as the product writes it (components/settings/ide.py) for a gallery at `base`."""
    return json.dumps(Gallery(base).product)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Served:
    """A stand-in started with its CLI (`python -m ...`), waited for until it prints `ready`."""

    def __init__(self, module: str, args: list[str], log: Path) -> None:
        self.log = log
        self._stderr = log.open("w")
        self.proc = subprocess.Popen([sys.executable, "-m", module, *args], cwd=REPOSITORY, stdout=subprocess.PIPE,
                                     stderr=self._stderr, text=True)
        line = self.proc.stdout.readline().strip()  # type: ignore[union-attr]
        if line != "ready":
            self.stop()
            raise AssertionError(f"{module} did not start: {line!r} {log.read_text()}")

    def lines(self) -> list[str]:
        return self.log.read_text().splitlines()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self._stderr.close()


@pytest.fixture
def ca(tmp_path: Path) -> DemoCA:
    return DemoCA(tmp_path / "ca")


@pytest.fixture
def code_host(tmp_path: Path, ca: DemoCA) -> Iterator[tuple[str, _Served]]:
    cert = ca.issue("codehost", dns=("localhost",), ips=("127.0.0.1",))
    codehost.make_repo(tmp_path / "repos", "demo")
    port = _free_port()
    served = _Served("scripts.lab.demo.codehost", ["--listen", "127.0.0.1", "--port", str(port), "--cert", str(cert.cert),
                                             "--key", str(cert.key), "--root", str(tmp_path / "repos")], tmp_path / "codehost.log")
    yield f"https://127.0.0.1:{port}", served
    served.stop()


def _git(*argv: str, ca: DemoCA, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    # GIT_SSL_CAINFO, where set (these machines set it to Debian's bundle), beats http.sslCAInfo: set both.
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_TERMINAL_PROMPT": "0", "GIT_SSL_CAINFO": str(ca.cert)}
    return subprocess.run(["git", "-c", f"http.sslCAInfo={ca.cert}", *argv], cwd=cwd, env=env, capture_output=True, text=True, check=False)


@pytest.mark.slow
def test_git_clone_over_smart_https(code_host: tuple[str, _Served], ca: DemoCA, tmp_path: Path) -> None:
    base, served = code_host
    clone = _git("clone", f"{base}/demo.git", str(tmp_path / "clone"), ca=ca)
    assert clone.returncode == 0, clone.stderr
    assert (tmp_path / "clone" / "README.md").read_text() == codehost.README_TEXT
    # The smart protocol, not static files: the advertisement comes from http-backend.
    context = ssl.create_default_context(cafile=str(ca.cert))
    with urllib.request.urlopen(f"{base}/demo.git/info/refs?service=git-upload-pack", context=context) as answer:
        assert answer.headers["Content-Type"] == "application/x-git-upload-pack-advertisement"
    assert "codehost: POST /demo.git/git-upload-pack 200" in served.lines()


@pytest.mark.slow
def test_git_push_refused_and_unknown_repo_404(code_host: tuple[str, _Served], ca: DemoCA, tmp_path: Path) -> None:
    base, served = code_host
    work = tmp_path / "clone"
    assert _git("clone", f"{base}/demo.git", str(work), ca=ca).returncode == 0
    (work / "new.txt").write_text("x\n")
    _git("add", "new.txt", ca=ca, cwd=work)
    _git("-c", "user.name=t", "-c", "user.email=t@t.invalid", "commit", "-qm", "x", ca=ca, cwd=work)
    push = _git("push", "origin", "main", ca=ca, cwd=work)
    assert push.returncode != 0 and "403" in push.stderr, push.stderr
    missing = _git("clone", f"{base}/nope.git", str(tmp_path / "nope"), ca=ca)
    assert missing.returncode != 0 and "not found" in missing.stderr, missing.stderr
    assert "codehost: GET /nope.git/info/refs 404" in served.lines()


def test_codehost_fails_loudly(tmp_path: Path) -> None:
    with pytest.raises(codehost.CodeHostError, match="does not exist"):
        codehost.make_server(tmp_path / "missing", "127.0.0.1", 0, "c", "k")
    codehost.make_repo(tmp_path, "x")
    with pytest.raises(codehost.CodeHostError, match="exists already"):
        codehost.make_repo(tmp_path, "x")


# --- the gallery and the test extension -------------------------------------------------------


def test_vsix_is_deterministic_and_valid(tmp_path: Path) -> None:
    import zipfile

    one, two = vsix.build(tmp_path / "a"), vsix.build(tmp_path / "b")
    assert one.sha256 == two.sha256
    with zipfile.ZipFile(one.path) as archive:
        assert set(archive.namelist()) == {"[Content_Types].xml", "extension.vsixmanifest", "extension/package.json", "extension/extension.js"}
        manifest = json.loads(archive.read("extension/package.json"))
    assert manifest["activationEvents"] == ["onStartupFinished"] and manifest["publisher"] == "hcs-test"


def test_gallery_fails_loudly(tmp_path: Path) -> None:
    with pytest.raises(gallery.GalleryError, match="does not exist"):
        gallery.load_directory(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(gallery.GalleryError, match="no \\*.vsix"):
        gallery.load_directory(tmp_path / "empty")
    (tmp_path / "bad.vsix").write_bytes(b"not a zip")
    with pytest.raises(gallery.GalleryError, match="not a VSIX"):
        gallery.load_vsix(tmp_path / "bad.vsix")


@pytest.fixture
def served_gallery(tmp_path: Path, ca: DemoCA) -> Iterator[tuple[str, _Served, vsix.Vsix]]:
    cert = ca.issue("gallery", dns=("localhost",), ips=("127.0.0.1",))
    built = vsix.build(tmp_path / "vsix")
    port = _free_port()
    served = _Served("scripts.lab.demo.gallery", ["--listen", "127.0.0.1", "--port", str(port), "--cert", str(cert.cert),
                                            "--key", str(cert.key), "--vsix-dir", str(tmp_path / "vsix")], tmp_path / "gallery.log")
    yield f"https://127.0.0.1:{port}", served, built
    served.stop()


def test_gallery_is_strict(served_gallery: tuple[str, _Served, vsix.Vsix], ca: DemoCA) -> None:
    base, served, built = served_gallery
    context = ssl.create_default_context(cafile=str(ca.cert))

    def status(path: str, method: str = "GET", body: bytes | None = None) -> int:
        request = urllib.request.Request(base + path, data=body, method=method, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, context=context) as answer:
                return answer.status
        except urllib.error.HTTPError as error:
            return error.code

    asset = f"/vscode/asset/hcs-test/proof/{built.version}/{gallery.VSIX_ASSET}"
    assert status(asset) == 200
    assert status(asset, "POST", b"") == 405
    assert status("/vscode/gallery/extensionquery") == 405
    assert status("/vscode/gallery/extensionquery", "POST", b"{}") == 400
    assert status("/vscode/asset/hcs-test/proof/9.9.9/" + gallery.VSIX_ASSET) == 404
    assert status("/api/hcs-test/proof") == 404
    assert status(f"/vscode/unpkg/hcs-test/proof/{built.version}/package.json") == 200
    query = {"filters": [{"criteria": [{"filterType": 7, "value": "HCS-TEST.proof"}], "pageNumber": 1, "pageSize": 1}], "flags": 0}
    request = urllib.request.Request(base + "/vscode/gallery/extensionquery", data=json.dumps(query).encode(), method="POST")
    with urllib.request.urlopen(request, context=context) as answer:
        (result,) = json.load(answer)["results"]
    (found,) = result["extensions"]
    assert found["extensionName"] == "proof" and found["versions"][0]["version"] == built.version
    assert "gallery: GET /api/hcs-test/proof 404" in served.lines()


def _code_server() -> list[str]:
    """The cached code-server's argv prefix; builds it (~2 min) if missing, fails loudly if it cannot."""
    from scripts.tools.code_server_cache import CacheError, ensure

    try:
        return ensure().command()
    except CacheError as error:
        pytest.fail(f"code-server for the gallery test: {error}", pytrace=False)


def _install(extension: str, tmp_path: Path, tag: str, env: dict[str, str], settings: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess[str], Path]:
    """`code-server --install-extension` with only `env` (plus PATH, HOME), fresh dirs under tmp_path/tag."""
    user_data, extensions = tmp_path / tag / "data", tmp_path / tag / "extensions"
    if settings:
        (user_data / "User").mkdir(parents=True)
        (user_data / "User" / "settings.json").write_text(json.dumps(settings))
    (tmp_path / "home").mkdir(exist_ok=True)
    full_env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path / "home"), **env}
    argv = [*_code_server(), "--extensions-dir", str(extensions), "--user-data-dir", str(user_data), "--install-extension", extension]
    return subprocess.run(argv, env=full_env, capture_output=True, text=True, timeout=120, check=False), extensions


@pytest.mark.slow
def test_code_server_installs_from_gallery(served_gallery: tuple[str, _Served, vsix.Vsix], ca: DemoCA, tmp_path: Path) -> None:
    base, served, built = served_gallery
    env = {"EXTENSIONS_GALLERY": _gallery_env(base), "NODE_EXTRA_CA_CERTS": str(ca.cert)}
    result, extensions = _install(built.extension_id, tmp_path, "gallery", env)
    assert result.returncode == 0, result.stdout + result.stderr
    # A gallery install names the directory with the target platform Open VSX reports ("universal").
    assert (extensions / f"{built.install_dir_name}-universal" / "extension.js").is_file()
    log = served.lines()
    assert "gallery: POST /vscode/gallery/extensionquery 200" in log
    assert f"gallery: GET /vscode/asset/hcs-test/proof/{built.version}/{gallery.VSIX_ASSET} 200" in log


@pytest.mark.slow
def test_code_server_installs_vsix_offline(tmp_path: Path) -> None:
    built = vsix.build(tmp_path / "vsix")
    # No gallery reachable: port 9 on 127.0.0.1 refuses; a file install must not need it.
    result, extensions = _install(str(built.path), tmp_path, "offline", {"EXTENSIONS_GALLERY": _gallery_env("https://127.0.0.1:9")})
    assert result.returncode == 0, result.stdout + result.stderr
    assert (extensions / built.install_dir_name / "package.json").is_file()


# --- the CLI install behind a forward proxy, and CA trust ----------------------------------------


class ConnectProxy:
    """A logging CONNECT-only forward proxy on 127.0.0.1 (a test double for Squid's tunnel, no ACLs)."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def close(self) -> None:
        self._sock.close()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._tunnel, args=(client,), daemon=True).start()

    def _tunnel(self, client: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:  # read byte-wise: nothing after the header may be swallowed
            byte = client.recv(1)
            if not byte:
                client.close()
                return
            head += byte
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        self.requests.append(line)
        method, target, _ = (line.split() + ["", "", ""])[:3]
        if method != "CONNECT":
            client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            client.close()
            return
        host, _, port = target.rpartition(":")
        try:
            upstream = socket.create_connection((host, int(port)), timeout=5)
        except OSError:
            client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            client.close()
            return
        client.sendall(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        try:
            while True:
                ready, _, _ = select.select([client, upstream], [], [], 30)
                if not ready:
                    break
                for side in ready:
                    data = side.recv(65536)
                    if not data:
                        raise EOFError
                    (upstream if side is client else client).sendall(data)
        except (EOFError, OSError):
            pass
        finally:
            client.close()
            upstream.close()


@pytest.fixture
def proxy() -> Iterator[ConnectProxy]:
    p = ConnectProxy()
    yield p
    p.close()


@pytest.mark.slow
@pytest.mark.parametrize("how", ["HTTPS_PROXY", "https_proxy", "http.proxy in User/settings.json", "HTTPS_PROXY despite NO_PROXY"])
def test_cli_install_goes_through_proxy(how: str, served_gallery: tuple[str, _Served, vsix.Vsix], proxy: ConnectProxy, ca: DemoCA, tmp_path: Path) -> None:
    base, _served, built = served_gallery
    env = {"EXTENSIONS_GALLERY": _gallery_env(base), "NODE_EXTRA_CA_CERTS": str(ca.cert)}
    settings = None
    if how.startswith("http.proxy"):
        settings = {"http.proxy": proxy.url}
    else:
        env[how.split()[0]] = proxy.url
        if "NO_PROXY" in how:  # VS Code's node request service reads only the *_PROXY variables
            env["NO_PROXY"] = "127.0.0.1,localhost"
    result, extensions = _install(built.extension_id, tmp_path, "proxied", env, settings)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (extensions / f"{built.install_dir_name}-universal").is_dir()
    target = base.removeprefix("https://")
    assert proxy.requests and all(r == f"CONNECT {target} HTTP/1.1" for r in proxy.requests), proxy.requests


@pytest.mark.slow
def test_cli_install_fails_closed_when_proxy_is_down(served_gallery: tuple[str, _Served, vsix.Vsix], ca: DemoCA, tmp_path: Path) -> None:
    base, served, built = served_gallery
    env = {"EXTENSIONS_GALLERY": _gallery_env(base), "NODE_EXTRA_CA_CERTS": str(ca.cert), "HTTPS_PROXY": "http://127.0.0.1:9"}
    result, _ = _install(built.extension_id, tmp_path, "dead-proxy", env)
    assert result.returncode != 0 and "ECONNREFUSED 127.0.0.1:9" in result.stdout + result.stderr
    assert not any("extensionquery" in line for line in served.lines()), "went around the proxy"


@pytest.mark.slow
@pytest.mark.parametrize("trust", ["none", "SSL_CERT_FILE only", "NODE_EXTRA_CA_CERTS bundle", "NODE_USE_SYSTEM_CA=1", "NODE_OPTIONS=--use-system-ca"])
def test_which_ca_settings_node_trusts(trust: str, served_gallery: tuple[str, _Served, vsix.Vsix], ca: DemoCA, tmp_path: Path) -> None:
    """A 'system store' of our own: Debian's bundle plus the demo CA, given to OpenSSL by SSL_CERT_FILE
    (Node's --use-system-ca reads OpenSSL's default store on Linux, which that variable moves)."""
    base, _served, built = served_gallery
    bundle = tmp_path / "system-bundle.pem"
    bundle.write_text(Path("/etc/ssl/certs/ca-certificates.crt").read_text() + ca.cert.read_text())
    env = {"EXTENSIONS_GALLERY": _gallery_env(base)}
    env.update({
        "none": {},
        "SSL_CERT_FILE only": {"SSL_CERT_FILE": str(bundle)},
        "NODE_EXTRA_CA_CERTS bundle": {"NODE_EXTRA_CA_CERTS": str(bundle)},
        "NODE_USE_SYSTEM_CA=1": {"NODE_USE_SYSTEM_CA": "1", "SSL_CERT_FILE": str(bundle)},
        "NODE_OPTIONS=--use-system-ca": {"NODE_OPTIONS": "--use-system-ca", "SSL_CERT_FILE": str(bundle)},
    }[trust])
    result, _ = _install(built.extension_id, tmp_path, "trust", env)
    if trust in ("none", "SSL_CERT_FILE only"):
        assert result.returncode != 0 and "unable to verify the first certificate" in result.stdout + result.stderr
    else:
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_extension_activates_in_browser_ide_and_server_queries_via_proxy(
    served_gallery: tuple[str, _Served, vsix.Vsix], proxy: ConnectProxy, ca: DemoCA, tmp_path: Path
) -> None:
    """The VSIX's proofs (status bar text, marker file) in a real workbench; and the running server's
    own gallery request (the browser's fetch fails without CORS, VS Code falls back to the server)
    goes through HTTPS_PROXY. Workspace trust is off here: in Restricted Mode code-server 4.139.1
    showed the extension disabled although it declares untrustedWorkspaces support."""
    from playwright.sync_api import sync_playwright

    base, served, built = served_gallery
    env = {"EXTENSIONS_GALLERY": _gallery_env(base), "NODE_EXTRA_CA_CERTS": str(ca.cert)}
    result, extensions = _install(str(built.path), tmp_path, "ide", env, {
        "chat.disableAIFeatures": True, "workbench.startupEditor": "none", "security.workspace.trust.enabled": False})
    assert result.returncode == 0, result.stdout + result.stderr
    port, home = _free_port(), tmp_path / "home"
    argv = [*_code_server(), "--bind-addr", f"127.0.0.1:{port}", "--auth", "none", "--disable-telemetry", "--disable-update-check",
            "--user-data-dir", str(tmp_path / "ide" / "data"), "--extensions-dir", str(extensions), str(tmp_path / "ide")]
    with (tmp_path / "code-server.log").open("w") as log:
        server = subprocess.Popen(argv, env={"PATH": "/usr/bin:/bin", "HOME": str(home), **env, "HTTPS_PROXY": proxy.url},
                                  stdout=log, stderr=subprocess.STDOUT)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            page = browser.new_page()
            for _ in range(50):  # code-server binds within ~1 s
                try:
                    page.goto(f"http://127.0.0.1:{port}/")
                    break
                except Exception:  # noqa: BLE001 - connection refused while starting
                    page.wait_for_timeout(200)
            page.wait_for_selector(".monaco-workbench", timeout=30_000)
            page.locator(".statusbar").get_by_text(vsix.PROOF_TEXT).wait_for(timeout=30_000)
            browser.close()
        assert (home / vsix.MARKER_NAME).read_text().strip().startswith("20")
    finally:
        server.terminate()
        server.wait(timeout=20)
    target = base.removeprefix("https://")
    assert f"CONNECT {target} HTTP/1.1" in proxy.requests, proxy.requests
    assert "gallery: POST /vscode/gallery/extensionquery 200" in served.lines()
