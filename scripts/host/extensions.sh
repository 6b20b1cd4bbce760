# extensions: the VSIX files of ideExtensions, installed for the IDE user. HCS_EXTENSIONS: one
# "URL SHA256" per line; HCS_IDE_USER (on a team VM: every workspace account, space-separated, each
# getting its own copy); HCS_PROXY optional (as for the code-server package). Every
# file is downloaded and checked before any is installed: one whose SHA-256 differs stops the step
# with nothing installed. An extension already installed at the file's version is left alone;
# one removed from the list stays (it may be the user's own by now).
for user in $HCS_IDE_USER; do
    getent passwd "$user" >/dev/null || hcs_fail "no account $user (the accounts step makes it)"
done
# Without root's TMPDIR: libpam-tmpdir (the baseline) gives this sudo session /tmp/user/0, which
# the IDE user cannot enter (mktemp there was refused on the demo).
as_ide() { runuser -u "$user" -- env -u TMPDIR HOME="$(getent passwd "$user" | cut -d: -f6)" "$@"; }
HCS_STAGE=$(mktemp -d)
files=()
while read -r url sha; do
    [ -n "$url" ] || continue
    file="$HCS_STAGE/${#files[@]}.vsix"
    curl -fsSL --proto '=https,http' --max-time 600 ${HCS_PROXY:+--proxy "$HCS_PROXY"} -o "$file" "$url" \
        || hcs_fail "download of $url failed (with a locked egress the URL must be reachable via the allowlist)"
    actual=$(sha256sum "$file" | cut -d' ' -f1)
    [ "$actual" = "$sha" ] || hcs_fail "SHA-256 mismatch for $url: expected $sha, got $actual; refused, no extension installed (ideExtensions)"
    files+=("$file")
done <<<"$HCS_EXTENSIONS"
for user in $HCS_IDE_USER; do
    installed=$(as_ide code-server --list-extensions --show-versions 2>/dev/null | tr '[:upper:]' '[:lower:]')
    for file in "${files[@]}"; do
        id=$(python3 -c '
import json, sys, zipfile
manifest = json.loads(zipfile.ZipFile(sys.argv[1]).read("extension/package.json"))
print((manifest["publisher"] + "." + manifest["name"] + "@" + manifest["version"]).lower())' "$file") \
            || hcs_fail "$file is not a VSIX (no extension/package.json with publisher, name and version)"
        if grep -qxF -- "$id" <<<"$installed"; then continue; fi
        copy=$(as_ide mktemp --suffix=.vsix)
        cat -- "$file" >"$copy"
        as_ide code-server --install-extension "$copy" >/dev/null || { rm -f -- "$copy"; hcs_fail "code-server could not install $id"; }
        rm -f -- "$copy"
        hcs_changed "extension $id installed for $user"
    done
done
hcs_done
