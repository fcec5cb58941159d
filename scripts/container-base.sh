#!/usr/bin/env bash
# Make a minimal Debian base image locally (debootstrap, no registry) for test builds of the
# Containerfile:  podman build --build-arg BASE_IMAGE=<tag> ...
#
# Usage: scripts/container-base.sh [TAG]        (default: localhost/virnuc-base:bookworm-min)
# Env:   PODMAN                podman command line (default: "podman --storage-driver=vfs")
#        VIRNUC_BASE_SUITE     Debian suite (default: bookworm)
#        VIRNUC_DEBIAN_MIRROR  mirror (default: the first one in this machine's apt sources)
#
# Cached: the image carries the label virnuc.base.key = hash(this file, suite, mirror); when an
# image with the same tag and key exists nothing is done, so reruns cost one `podman inspect`.
# Needs root (debootstrap).
set -euo pipefail

tag="${1:-localhost/virnuc-base:bookworm-min}"
suite="${VIRNUC_BASE_SUITE:-bookworm}"
read -r -a podman <<<"${PODMAN:-podman --storage-driver=vfs}"

# First mirror listed for $suite in the apt sources (one-line and deb822 formats).
apt_mirror() {
    {
        cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
            | sed -e 's/\[[^]]*\]//' \
            | awk -v s="$suite" '$1 == "deb" && $3 == s { print $2 }'
        cat /etc/apt/sources.list.d/*.sources 2>/dev/null \
            | awk -v s="$suite" '
                /^[[:space:]]*$/ { uri = "" }
                $1 == "URIs:" { uri = $2 }
                $1 == "Suites:" { for (i = 2; i <= NF; i++) if ($i == s && uri != "") print uri }'
    } | head -n 1
}

mirror="${VIRNUC_DEBIAN_MIRROR:-$(apt_mirror)}"
mirror="${mirror:-http://deb.debian.org/debian}"
key="$(printf '%s\n%s\n' "$suite" "$mirror" | cat - "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16)"

have="$("${podman[@]}" image inspect --format '{{ index .Labels "virnuc.base.key" }}' "$tag" 2>/dev/null || true)"
old_id="$("${podman[@]}" image inspect --format '{{ .Id }}' "$tag" 2>/dev/null || true)"
if [ "$have" = "$key" ]; then
    echo "container-base: $tag is up to date (key $key)"
    exit 0
fi

command -v debootstrap >/dev/null || { echo "container-base: debootstrap is not installed" >&2; exit 2; }
rootfs="$(mktemp -d "${TMPDIR:-/tmp}/virnuc-base.XXXXXX")"
trap 'rm -rf "$rootfs"' EXIT
chmod 0755 "$rootfs"    # mktemp makes it 0700; it becomes the image's /, which every user must enter

echo "container-base: debootstrap --variant=minbase $suite from $mirror"
debootstrap --variant=minbase "$suite" "$rootfs" "$mirror" >"$rootfs.log" 2>&1 \
    || { tail -n 20 "$rootfs.log" >&2; rm -f "$rootfs.log"; exit 1; }
rm -f "$rootfs.log"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*

echo "container-base: importing as $tag"
tar -C "$rootfs" -c . | "${podman[@]}" import --quiet --change "LABEL virnuc.base.key=$key" - "$tag" >/dev/null
new_id="$("${podman[@]}" image inspect --format '{{ .Id }}' "$tag")"
if [ -n "$old_id" ] && [ "$old_id" != "$new_id" ]; then    # stale base, untagged: vfs keeps a full copy
    "${podman[@]}" rmi "$old_id" >/dev/null 2>&1 || echo "container-base: kept old base $old_id (in use)"
fi
echo "container-base: built $tag (key $key)"
