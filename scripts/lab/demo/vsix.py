"""A test extension VSIX (stand-in for a real gallery extension): `hcs-test.proof`.

The demo must show that an extension fetched through the IDE's egress proxy is installed *and
runs*. A real extension from Open VSX would need the internet, so this builds a minimal, valid
VSIX (the zip layout `vsce` produces: `[Content_Types].xml`, `extension.vsixmanifest`,
`extension/package.json`, `extension/extension.js`) whose activation leaves two proofs:

- a status bar item with the text `PROOF_TEXT` (visible in the browser IDE), and
- the file `~/MARKER_NAME` in the extension host's home, holding an ISO timestamp (a shell check).

It activates `onStartupFinished`, i.e. once a workbench window has connected; installing alone
proves nothing about activation. It does not prove that real, signed, native or web extensions
work (code-server skips signature checks; this one has no native code and no web entry point).

The zip is deterministic (fixed timestamps and order), so its SHA-256 is stable and can be pinned
like a real extension's (`ideExtensions` takes URL@sha256).
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

PUBLISHER = "hcs-test"
NAME = "proof"
VERSION = "0.0.1"
# code-server 4.139.1 is VS Code 1.139.1 (lib/vscode/product.json "version"); any ^1.x at or below it installs.
ENGINE = "^1.90.0"
PROOF_TEXT = "hcs-proof active"
MARKER_NAME = ".hcs-proof-activated"
_DATE = (2026, 1, 1, 0, 0, 0)

_EXTENSION_JS = f"""\
'use strict';
// Test extension of hardened-code-server's demo: proves that it was installed and activated.
const vscode = require('vscode');
const fs = require('fs');
const os = require('os');
const path = require('path');

exports.activate = function (context) {{
  const item = vscode.window.createStatusBarItem('hcs-test.proof', vscode.StatusBarAlignment.Left, 1000);
  item.name = 'HCS proof';
  item.text = {json.dumps(PROOF_TEXT)};
  item.tooltip = 'The hcs-test.proof extension was installed and activated';
  item.show();
  context.subscriptions.push(item);
  fs.writeFileSync(path.join(os.homedir(), {json.dumps(MARKER_NAME)}), new Date().toISOString() + '\\n');
}};

exports.deactivate = function () {{}};
"""

_CONTENT_TYPES = """\
<?xml version="1.0" encoding="utf-8"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">\
<Default Extension=".json" ContentType="application/json"/>\
<Default Extension=".js" ContentType="application/javascript"/>\
<Default Extension=".vsixmanifest" ContentType="text/xml"/>\
</Types>
"""


@dataclass(frozen=True)
class Vsix:
    path: Path
    sha256: str
    publisher: str
    name: str
    version: str

    @property
    def extension_id(self) -> str:
        return f"{self.publisher}.{self.name}"

    @property
    def install_dir_name(self) -> str:
        """The directory an install from this file creates under --extensions-dir (`publisher.name-version`);
        an install from a gallery that reports `targetPlatform: universal` (Open VSX, the stand-in) adds `-universal`."""
        return f"{self.extension_id}-{self.version}"


def package_json(version: str = VERSION) -> dict[str, object]:
    return {
        "name": NAME,
        "publisher": PUBLISHER,
        "displayName": "HCS proof (test extension)",
        "description": "Shows that an extension from the gallery was installed and activated.",
        "version": version,
        "license": "MIT",
        "engines": {"vscode": ENGINE},
        "categories": ["Other"],
        "activationEvents": ["onStartupFinished"],
        # Runs in a folder the user has not trusted yet (restricted mode disables extensions that don't say so).
        "capabilities": {"untrustedWorkspaces": {"supported": True}, "virtualWorkspaces": True},
        "main": "./extension.js",
    }


def _vsixmanifest(version: str) -> str:
    return f"""\
<?xml version="1.0" encoding="utf-8"?>
<PackageManifest Version="2.0.0" xmlns="http://schemas.microsoft.com/developer/vsx-schema/2011" xmlns:d="http://schemas.microsoft.com/developer/vsx-schema-design/2011">
  <Metadata>
    <Identity Language="en-US" Id="{NAME}" Version="{version}" Publisher="{PUBLISHER}" />
    <DisplayName>HCS proof (test extension)</DisplayName>
    <Description xml:space="preserve">Shows that an extension from the gallery was installed and activated.</Description>
    <Categories>Other</Categories>
    <Properties>
      <Property Id="Microsoft.VisualStudio.Code.Engine" Value="{ENGINE}" />
      <Property Id="Microsoft.VisualStudio.Code.ExtensionDependencies" Value="" />
      <Property Id="Microsoft.VisualStudio.Code.ExtensionPack" Value="" />
      <Property Id="Microsoft.VisualStudio.Code.ExtensionKind" Value="workspace" />
    </Properties>
  </Metadata>
  <Installation>
    <InstallationTarget Id="Microsoft.VisualStudio.Code" />
  </Installation>
  <Dependencies />
  <Assets>
    <Asset Type="Microsoft.VisualStudio.Code.Manifest" Path="extension/package.json" Addressable="true" />
  </Assets>
</PackageManifest>
"""


def build(directory: Path, version: str = VERSION) -> Vsix:
    """Write `hcs-test.proof-<version>.vsix` into `directory`; return its path and SHA-256."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{PUBLISHER}.{NAME}-{version}.vsix"
    members = [
        ("[Content_Types].xml", _CONTENT_TYPES),
        ("extension.vsixmanifest", _vsixmanifest(version)),
        ("extension/package.json", json.dumps(package_json(version), indent=2) + "\n"),
        ("extension/extension.js", _EXTENSION_JS),
    ]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for member, text in members:
            info = zipfile.ZipInfo(member, date_time=_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, text)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return Vsix(path, digest, PUBLISHER, NAME, version)


if __name__ == "__main__":
    import sys

    built = build(Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd())
    print(f"{built.path} sha256={built.sha256}")
