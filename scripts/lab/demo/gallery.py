"""An Open VSX stand-in (tests and demo only): the part of Open VSX's VS Code API that code-server uses.

    python -m scripts.lab.demo.gallery --listen ADDR --port PORT --cert C --key K --vsix-dir DIR

Serves the `.vsix` files of DIR over HTTPS under Open VSX's paths, for code-server started with

    EXTENSIONS_GALLERY={"serviceUrl": "BASE/vscode/gallery", "itemUrl": "BASE/vscode/item",
                        "resourceUrlTemplate": "BASE/vscode/unpkg/{publisher}/{name}/{version}/{path}"}

    POST /vscode/gallery/extensionquery                        Marketplace-shaped query answer
    GET  /vscode/asset/<pub>/<name>/<version>/<assetType>       VSIXPackage (the VSIX) or Code.Manifest
    GET  /vscode/unpkg/<pub>/<name>/<version>/<path>            a file of the extension (extension/<path>)

What code-server 4.139.1 (VS Code 1.139.1) asks, read from its compiled `server-main.js`: the
query is a POST of `{filters: [{criteria: [{filterType, value}], pageNumber, pageSize, sortBy,
sortOrder}], assetTypes, flags}` (filterType 7 = ExtensionName `publisher.name`, 4 = ExtensionId,
10 = SearchText, 8 = Target, 12 = ExcludeWithFlags); the answer is `{results: [{extensions: [...],
resultMetadata: [{metadataType: "ResultCount", ...}]}]}`, each version carrying `assetUri`,
`fallbackAssetUri`, `files[{assetType, source}]` and `properties` (Engine). The VSIX is then fetched
from `<fallbackAssetUri>/Microsoft.VisualStudio.Services.VSIXPackage?redirect=true&install=true`.
The shape follows Open VSX's answers (namespaces as publishers, `targetPlatform: universal`).

Strict: unknown paths 404, a known path with another method 405, unknown extensions 404. Every
request is logged to stderr as `gallery: METHOD PATH STATUS` so tests can see what was fetched.

Not modelled (not proven by tests using it): signatures (no `VsixSignature` asset; code-server
does not verify signatures anyway), search ranking, categories, sorting, statistics, README and
icons, the `/api` REST interface, the `.../latest` resource API (answered 404, on which VS Code
falls back to the query), and CORS headers: Open VSX sends them, so a browser can query it
directly; without them the workbench's own fetch fails and it asks the code-server process to
make the request instead (VS Code's browser request service falls back to the server).
"""

from __future__ import annotations

import json
import re
import sys
import uuid
import zipfile
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from scripts.lab.tls_server import https_server, run_stand_in, stand_in_parser

VSIX_ASSET = "Microsoft.VisualStudio.Services.VSIXPackage"
MANIFEST_ASSET = "Microsoft.VisualStudio.Code.Manifest"
_FILTER_TAG, _FILTER_ID, _FILTER_NAME, _FILTER_SEARCH = 1, 4, 7, 10
_FLAG_LATEST_ONLY = 512
_NAMESPACE = uuid.UUID("6c1a3d0e-55b1-4c3f-9a57-7e0d3f0a1c11")  # extension/publisher IDs derive from names
_DATE = "2026-01-01T00:00:00.000Z"


class GalleryError(RuntimeError):
    """The gallery cannot serve what it was given; the message says why."""


@dataclass(frozen=True)
class Extension:
    """One VSIX file and what its `extension/package.json` says."""

    path: Path
    publisher: str
    name: str
    version: str
    manifest: dict[str, Any]

    @property
    def extension_id(self) -> str:
        return f"{self.publisher}.{self.name}"


def load_vsix(path: Path) -> Extension:
    """Read a VSIX's manifest, failing loudly if it is not a usable extension package."""
    try:
        with zipfile.ZipFile(path) as archive:
            manifest = json.loads(archive.read("extension/package.json"))
    except (OSError, KeyError, zipfile.BadZipFile, ValueError) as error:
        raise GalleryError(f"{path}: not a VSIX with extension/package.json ({error})") from error
    missing = [key for key in ("publisher", "name", "version", "engines") if not manifest.get(key)]
    if missing:
        raise GalleryError(f"{path}: extension/package.json lacks {', '.join(missing)}")
    return Extension(path, manifest["publisher"], manifest["name"], manifest["version"], manifest)


def load_directory(directory: Path) -> list[Extension]:
    if not directory.is_dir():
        raise GalleryError(f"VSIX directory {directory} does not exist")
    extensions = [load_vsix(p) for p in sorted(directory.glob("*.vsix"))]
    if not extensions:
        raise GalleryError(f"no *.vsix files in {directory}: the gallery would have nothing to serve")
    return extensions


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) if part.isdigit() else 0 for part in re.split(r"[.-]", version))


class Catalogue:
    """The extensions on offer, grouped by ID (newest version first), in Open VSX's answer shape."""

    def __init__(self, extensions: list[Extension]) -> None:
        self.by_id: dict[str, list[Extension]] = {}
        for ext in extensions:
            self.by_id.setdefault(ext.extension_id.lower(), []).append(ext)
        for versions in self.by_id.values():
            versions.sort(key=lambda e: _version_key(e.version), reverse=True)

    def find(self, publisher: str, name: str, version: str) -> Extension | None:
        for ext in self.by_id.get(f"{publisher}.{name}".lower(), []):
            if ext.version == version:
                return ext
        return None

    @staticmethod
    def uuid_of(extension_id: str) -> str:
        return str(uuid.uuid5(_NAMESPACE, extension_id.lower()))

    def query(self, body: dict[str, Any], base: str) -> dict[str, Any]:
        filters = body.get("filters")
        if not isinstance(filters, list) or not filters:
            raise ValueError("filters: a non-empty list is required")
        flags = int(body.get("flags", 0))
        results = []
        for query in filters:
            criteria = query.get("criteria", [])
            matched = self._match(criteria)
            page, size = int(query.get("pageNumber", 1)), int(query.get("pageSize", 50))
            shown = matched[(page - 1) * size : page * size]
            results.append({
                "extensions": [self._raw(versions, flags, base) for versions in shown],
                "pagingToken": None,
                "resultMetadata": [{"metadataType": "ResultCount", "metadataItems": [{"name": "TotalCount", "count": len(matched)}]}],
            })
        return {"results": results}

    def _match(self, criteria: list[dict[str, Any]]) -> list[list[Extension]]:
        names = {str(c["value"]).lower() for c in criteria if c.get("filterType") == _FILTER_NAME}
        ids = {str(c["value"]).lower() for c in criteria if c.get("filterType") == _FILTER_ID}
        texts = [str(c["value"]).lower() for c in criteria if c.get("filterType") == _FILTER_SEARCH]
        tags = [c for c in criteria if c.get("filterType") == _FILTER_TAG]
        out = []
        for key, versions in sorted(self.by_id.items()):
            if names or ids:
                if key not in names and self.uuid_of(key) not in ids:
                    continue
            elif tags:
                continue  # no tags or categories here
            elif texts and not any(t in key or t in str(versions[0].manifest.get("displayName", "")).lower() for t in texts):
                continue
            out.append(versions)
        return out

    def _raw(self, versions: list[Extension], flags: int, base: str) -> dict[str, Any]:
        latest = versions[0]
        shown = versions[:1] if flags & _FLAG_LATEST_ONLY else versions
        return {
            "extensionId": self.uuid_of(latest.extension_id),
            "extensionName": latest.name,
            "displayName": latest.manifest.get("displayName", latest.name),
            "shortDescription": latest.manifest.get("description", ""),
            "publisher": {"displayName": latest.publisher, "publisherId": str(uuid.uuid5(_NAMESPACE, latest.publisher.lower())),
                          "publisherName": latest.publisher, "domain": None, "isDomainVerified": False},
            "versions": [self._version(ext, base) for ext in shown],
            "statistics": [{"statisticName": "install", "value": 0.0}],
            "tags": [], "categories": latest.manifest.get("categories", []),
            "releaseDate": _DATE, "publishedDate": _DATE, "lastUpdated": _DATE, "flags": "",
        }

    @staticmethod
    def _version(ext: Extension, base: str) -> dict[str, Any]:
        asset_uri = f"{base}/vscode/asset/{ext.publisher}/{ext.name}/{ext.version}"
        m = ext.manifest
        return {
            "version": ext.version, "lastUpdated": _DATE, "targetPlatform": "universal",
            "assetUri": asset_uri, "fallbackAssetUri": asset_uri,
            "files": [{"assetType": t, "source": f"{asset_uri}/{t}"} for t in (MANIFEST_ASSET, VSIX_ASSET)],
            "properties": [
                {"key": "Microsoft.VisualStudio.Code.Engine", "value": m["engines"].get("vscode", "")},
                {"key": "Microsoft.VisualStudio.Code.ExtensionDependencies", "value": ",".join(m.get("extensionDependencies", []))},
                {"key": "Microsoft.VisualStudio.Code.ExtensionPack", "value": ",".join(m.get("extensionPack", []))},
                {"key": "Microsoft.VisualStudio.Code.LocalizedLanguages", "value": ""},
            ],
        }


class Handler(BaseHTTPRequestHandler):
    catalogue: Catalogue
    protocol_version = "HTTP/1.1"
    server_version = "hcs-gallery-stand-in"

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        path = urlsplit(self.path).path
        print(f"gallery: {self.command} {path} {code}", file=sys.stderr, flush=True)

    def log_message(self, format: str, *args: Any) -> None:  # errors only; requests via log_request
        pass

    def _base(self) -> str:
        return f"https://{self.headers.get('Host', '')}"

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, message: str) -> None:
        self._send(status, json.dumps({"error": message}).encode(), "application/json")

    def _route(self) -> tuple[str, Any] | None:
        """Which endpoint the path names: (allowed method, handler) or None."""
        path = unquote(urlsplit(self.path).path)
        if path == "/vscode/gallery/extensionquery":
            return "POST", self._query
        parts = path.split("/")
        if len(parts) == 7 and parts[1:3] == ["vscode", "asset"] and all(parts[3:]):
            return "GET", lambda: self._asset(*parts[3:])
        if len(parts) >= 7 and parts[1:3] == ["vscode", "unpkg"] and all(parts[3:]):
            return "GET", lambda: self._file(parts[3], parts[4], parts[5], "/".join(parts[6:]))
        return None

    def _dispatch(self) -> None:
        route = self._route()
        if route is None:
            self._error(404, "not found")
        elif route[0] != self.command and not (route[0] == "GET" and self.command == "HEAD"):
            self.send_response(405)
            self.send_header("Allow", route[0])
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            route[1]()

    do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _dispatch

    def _query(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"null")
            answer = self.catalogue.query(body, self._base())
        except (ValueError, TypeError, AttributeError, KeyError) as error:
            self._error(400, f"bad query: {error}")
            return
        self._send(200, json.dumps(answer).encode(), "application/json")

    def _asset(self, publisher: str, name: str, version: str, asset_type: str) -> None:
        ext = self.catalogue.find(publisher, name, version)
        if ext is None:
            self._error(404, f"no extension {publisher}.{name}@{version}")
        elif asset_type == VSIX_ASSET:
            self._send(200, ext.path.read_bytes(), "application/octet-stream")
        elif asset_type == MANIFEST_ASSET:
            self._send(200, json.dumps(ext.manifest).encode(), "application/json")
        else:
            self._error(404, f"no asset {asset_type}")

    def _file(self, publisher: str, name: str, version: str, inner: str) -> None:
        ext = self.catalogue.find(publisher, name, version)
        try:
            with zipfile.ZipFile(ext.path) as archive:  # type: ignore[union-attr]
                data = archive.read(f"extension/{inner}")
        except (AttributeError, KeyError):
            self._error(404, "not found")
            return
        self._send(200, data, "application/octet-stream")


def make_server(extensions: list[Extension], host: str, port: int, cert: str, key: str) -> ThreadingHTTPServer:
    """The HTTPS server (TLS 1.2+) on `host:port`; `serve_forever()` runs it."""
    for needed in (cert, key):
        if not Path(needed).is_file():
            raise GalleryError(f"TLS file {needed} does not exist")
    handler = type("BoundHandler", (Handler,), {"catalogue": Catalogue(extensions)})
    return https_server(handler, host, port, cert, key)


def main(argv: list[str] | None = None) -> int:
    parser = stand_in_parser("An Open VSX stand-in (tests and demo only).")
    parser.add_argument("--vsix-dir", required=True, type=Path, help="directory of .vsix files to serve")
    args = parser.parse_args(argv)
    return run_stand_in("gallery", lambda: make_server(load_directory(args.vsix_dir), args.listen, args.port, args.cert, args.key),
                        (GalleryError, OSError))


if __name__ == "__main__":
    sys.exit(main())
