#!/usr/bin/env bash
# Builds the project's Dockerfile with podman on a machine without a Docker engine and without
# an image registry (CI here), from local stand-ins for the two base images it names.
#
#   scripts/image.sh [build]   make the stand-ins if needed, then build the image
#   scripts/image.sh bases     only make the stand-in base images
#   scripts/image.sh check     exit 0 when podman can build and run the image here; exit 3,
#                              with the reason on stderr, when it cannot (tests/image skips)
#   scripts/image.sh run ARGS  podman run the image the way Kubernetes runs it (user 10001,
#                              read-only root, tmpfs /tmp, no capabilities, host network)
#   scripts/image.sh clean     remove the stand-ins and their cached root filesystem
#
# Environment:
#   ZHUCUN_IMAGE          the tag to build or run (default localhost/zhucun:dev)
#   ZHUCUN_IMAGE_BASES    standin (default): make and use local stand-ins;
#                         registry: pull the real bases (a machine with registry access)
#   ZHUCUN_IMAGE_RUNTIME  the OCI runtime (default runc: crun fails here on hybrid cgroups)
#   DEBIAN_MIRROR         for debootstrap (default: the first Debian URI of apt's sources)
#
# The stand-ins are tagged with the exact names the Dockerfile uses (read from its FROM
# lines), so the Dockerfile has nothing stand-in specific: with ZHUCUN_IMAGE_BASES=registry,
# or with `docker build .` on a machine that has an engine, it builds from the real images.
#
#   python:X-slim-bookworm  Debian bookworm (debootstrap minbase) with Debian's python3.11,
#                           pip/setuptools/wheel installed under /usr/local from Debian's
#                           wheels, /usr/local/bin/python{,3,3.11} linked to it (the official
#                           image keeps Python there) and this machine's CA bundle, which
#                           downloads from PyPI need here (SSL_CERT_FILE).
#   ghcr.io/astral-sh/uv:X  FROM scratch plus the real uv binary of version X (/uv).
#
# Each stand-in carries the label io.zhucun.stand-in=<hash of its recipe>; a stand-in whose
# recipe, CA bundle or uv binary changed is made again. The root filesystem tar is kept in
# .cache/image/ (ignored by git), so a machine whose podman store was wiped re-imports it in
# seconds instead of running debootstrap again.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"

IMAGE="${ZHUCUN_IMAGE:-localhost/zhucun:dev}"
BASES="${ZHUCUN_IMAGE_BASES:-standin}"
RUNTIME="${ZHUCUN_IMAGE_RUNTIME:-runc}"
CACHE="$ROOT/.cache/image"
LABEL="io.zhucun.stand-in"
SUITE="bookworm"
# What the stand-in installs besides minbase: the interpreter, Debian's wheels of pip,
# setuptools and wheel (installed under /usr/local like the official image's), and the CAs.
PACKAGES="python3.11,python3-pip-whl,python3-setuptools-whl,python3-wheel-whl,ca-certificates"
# Unavailable: exit status of `check` (and of every command) when podman cannot work here.
UNAVAILABLE=3

log() { printf '[image] %s\n' "$*" >&2; }
die() { printf '[image] error: %s\n' "$*" >&2; exit 1; }
unavailable() { printf '[image] unavailable: %s\n' "$*" >&2; exit "$UNAVAILABLE"; }

# The base images of the Dockerfile's stages (FROM lines naming no earlier stage).
base_images() {
    awk 'toupper($1) == "FROM" {
            image = ""
            for (i = 2; i <= NF; i++) if ($i !~ /^--/) { image = $i; break }
            if (tolower($(i + 1)) == "as") stage[tolower($(i + 2))] = 1
            if (image != "" && !(tolower(image) in stage)) print image
         }' Dockerfile | sort -u
}

python_base() { base_images | grep -E '(^|/)python:' | head -n1; }
uv_base() { base_images | grep -E '(^|/)astral-sh/uv:' | head -n1; }

# podman's short names ("python:3.11") resolve to docker.io/library/... when built from the
# Dockerfile; tag the stand-ins with the fully qualified names so no registry is consulted.
qualified() {
    local name="$1" first="${1%%/*}"
    if [[ "$name" != */* ]]; then
        echo "docker.io/library/$name"
    elif [[ "$first" != *.* && "$first" != *:* && "$first" != localhost ]]; then
        echo "docker.io/$name"
    else
        echo "$name"
    fi
}

# The real uv binary (not pyenv's shim, which is a shell script).
uv_binary() {
    local found=""
    if command -v pyenv >/dev/null 2>&1; then found="$(pyenv which uv 2>/dev/null || true)"; fi
    if [ -z "$found" ]; then found="$(command -v uv 2>/dev/null || true)"; fi
    [ -n "$found" ] || return 1
    found="$(readlink -f "$found")"
    # A shim or wrapper script is not something a FROM scratch image can run.
    if head -c 4 "$found" | grep -q $'^\x7fELF'; then echo "$found"; else return 1; fi
}

ca_bundle() {
    local bundle="${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}"
    [ -f "$bundle" ] && echo "$bundle"
}

debian_mirror() {
    if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "$DEBIAN_MIRROR"; return; fi
    local uri
    uri="$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | awk '$1 == "URIs:" { for (i = 2; i <= NF; i++) print $i }' \
        | grep -E '/debian/?$' | head -n1 || true)"
    if [ -z "$uri" ]; then
        uri="$(grep -hE '^deb\s' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
            | awk '{ print $2 }' | grep -E '/debian/?$' | head -n1 || true)"
    fi
    echo "${uri:-http://deb.debian.org/debian}"
}

# Explicit rlimits, no higher than this process's: it lacks CAP_SYS_RESOURCE, and podman's
# defaults (nofile at the kernel's maximum, nproc at pid_max) would try to raise them, which
# runc then fails to set ("error setting rlimits ... operation not permitted").
ULIMIT_CAP=10000
ulimit_flags() {
    local kind value
    for kind in nofile nproc; do
        if [ "$kind" = nofile ]; then value="$(ulimit -Hn)"; else value="$(ulimit -Hu)"; fi
        if [ "$value" = unlimited ] || [ "$value" -gt "$ULIMIT_CAP" ]; then value=$ULIMIT_CAP; fi
        printf -- '--ulimit=%s=%s:%s\n' "$kind" "$value" "$value"
    done
}

# podman reads this instead of /etc/containers/containers.conf: default_ulimits = [] keeps it
# from raising limits it may not raise; nothing on the machine is changed.
containers_conf() {
    mkdir -p "$CACHE"
    local conf="$CACHE/containers.conf"
    if [ ! -f "$conf" ]; then
        printf '%s\n' "# Written by scripts/image.sh" "[containers]" "default_ulimits = []" >"$conf"
    fi
    export CONTAINERS_CONF="$conf"
}

stand_in_label() {
    podman image inspect --format "{{ index .Labels \"$LABEL\" }}" "$1" 2>/dev/null || true
}

# -- check -----------------------------------------------------------------------------------
check() {
    command -v podman >/dev/null 2>&1 \
        || unavailable "podman is not installed (scripts/bootstrap.sh installs podman, runc and debootstrap with apt-get)"
    command -v "$RUNTIME" >/dev/null 2>&1 \
        || unavailable "the OCI runtime $RUNTIME is not installed (apt-get install $RUNTIME)"
    local info
    info="$(podman info --format '{{ .Store.GraphDriverName }}' 2>&1)" \
        || unavailable "podman cannot work here: $(tail -n1 <<<"$info")"
    [ -f Dockerfile ] || die "no Dockerfile in $ROOT"
    if [ "$BASES" = registry ]; then return 0; fi
    [ "$BASES" = standin ] || die "ZHUCUN_IMAGE_BASES must be standin or registry, not $BASES"
    local python uv
    python="$(qualified "$(python_base)")"
    uv="$(qualified "$(uv_base)")"
    if [ -z "$(stand_in_label "$python")" ]; then
        [ "$(id -u)" -eq 0 ] || unavailable "making the Python stand-in needs root (debootstrap)"
        command -v debootstrap >/dev/null 2>&1 \
            || unavailable "debootstrap is not installed (scripts/bootstrap.sh installs it)"
    fi
    if [ -z "$(stand_in_label "$uv")" ]; then
        uv_binary >/dev/null || unavailable "no uv binary found for the stand-in $uv"
    fi
}

# -- the Python stand-in ---------------------------------------------------------------------
make_rootfs() {
    local dir="$1" mirror
    mirror="$(debian_mirror)"
    log "debootstrap --variant=minbase $SUITE from $mirror (about a minute)"
    debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$dir" "$mirror" \
        >"$CACHE/debootstrap.log" 2>&1 \
        || { tail -n 20 "$CACHE/debootstrap.log" >&2; die "debootstrap failed (log: $CACHE/debootstrap.log)"; }
    # pip, setuptools and wheel under /usr/local, from Debian's wheels, without the network.
    # The official image has them there (the Dockerfile uninstalls them) and no
    # EXTERNALLY-MANAGED marker, which would make pip refuse.
    rm -f "$dir"/usr/lib/python3.*/EXTERNALLY-MANAGED
    local wheels=() wheel
    for wheel in "$dir"/usr/share/python-wheels/{pip,setuptools,wheel}-*.whl; do
        [ -f "$wheel" ] || die "debootstrap did not install $wheel"
        wheels+=("${wheel#"$dir"}")
    done
    local chroot
    chroot="$(command -v chroot)"
    env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 \
        "$chroot" "$dir" /usr/bin/python3.11 -I "${wheels[0]}/pip" install --quiet \
        --no-index --no-cache-dir --disable-pip-version-check --root-user-action=ignore \
        "${wheels[@]}"
    local link
    for link in python3.11 python3 python; do
        ln -sf /usr/bin/python3.11 "$dir/usr/local/bin/$link"
    done
    install -D -m 0644 "$(ca_bundle)" "$dir/usr/local/share/ca-certificates/stand-in/bundle.crt"
    # What the image does not need to run: downloaded packages, apt's lists.
    rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/* "$dir"/tmp/* "$dir"/root/.cache
}

python_recipe_hash() {
    {
        echo "$SUITE $PACKAGES"
        declare -f make_rootfs import_python
        sha256sum <"$(ca_bundle)"
    } | sha256sum | cut -c1-16
}

import_python() {
    local name="$1" tar="$2" hash="$3"
    podman import \
        --change "ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin" \
        --change "ENV LANG=C.UTF-8" \
        --change "ENV SSL_CERT_FILE=/usr/local/share/ca-certificates/stand-in/bundle.crt" \
        --change "LABEL $LABEL=$hash" \
        --change "LABEL io.zhucun.stand-in.for=$name" \
        --change 'CMD ["python3"]' \
        --quiet "$tar" "$name" >/dev/null
}

python_stand_in() {
    local name hash tar
    name="$(qualified "$(python_base)")"
    hash="$(python_recipe_hash)"
    if [ "$(stand_in_label "$name")" = "$hash" ]; then
        log "stand-in $name is up to date ($hash)"
        return
    fi
    tar="$CACHE/python-$hash.tar"
    if [ ! -f "$tar" ]; then
        [ "$(id -u)" -eq 0 ] || unavailable "making the Python stand-in needs root (debootstrap)"
        local dir="$CACHE/rootfs-$hash"
        rm -rf "$CACHE"/rootfs-* && mkdir -p "$dir"
        make_rootfs "$dir"
        tar --numeric-owner -C "$dir" -cf "$tar.part" . && mv "$tar.part" "$tar"
        rm -rf "$dir"
        # Older recipes' tars are of no more use.
        find "$CACHE" -maxdepth 1 -name 'python-*.tar' ! -name "python-$hash.tar" -delete
    fi
    log "importing $tar as $name"
    import_python "$name" "$tar" "$hash"
}

# -- the uv stand-in -------------------------------------------------------------------------
uv_stand_in() {
    local name version binary hash found
    name="$(qualified "$(uv_base)")"
    version="${name##*:}"
    binary="$(uv_binary)" || unavailable "no uv binary found for the stand-in $name"
    found="$("$binary" --version | awk '{ print $2 }')"
    [ "$found" = "$version" ] \
        || die "the Dockerfile uses uv $version but $binary is uv $found (scripts/bootstrap.sh installs $version)"
    hash="$(sha256sum <"$binary" | cut -c1-16)"
    if [ "$(stand_in_label "$name")" = "$hash" ]; then
        log "stand-in $name is up to date ($hash)"
        return
    fi
    local dir
    dir="$(mktemp -d)"
    cp "$binary" "$dir/uv"
    tar --numeric-owner --owner=0 --group=0 -C "$dir" -cf "$dir/uv.tar" uv
    podman import --change "LABEL $LABEL=$hash" --change "LABEL io.zhucun.stand-in.for=$name" \
        --change 'ENTRYPOINT ["/uv"]' --quiet "$dir/uv.tar" "$name" >/dev/null
    rm -rf "$dir"
    log "made stand-in $name from $binary"
}

bases() {
    mkdir -p "$CACHE"
    python_stand_in
    uv_stand_in
}

# -- build and run ---------------------------------------------------------------------------
build() {
    local pull=never started
    if [ "$BASES" = standin ]; then bases; else pull=missing; fi
    local flags
    mapfile -t flags < <(ulimit_flags)
    log "podman build -t $IMAGE (bases: $BASES)"
    started=$SECONDS
    podman build --pull="$pull" --runtime "$RUNTIME" "${flags[@]}" \
        --file Dockerfile --tag "$IMAGE" .
    log "built $IMAGE in $((SECONDS - started)) s ($(podman image inspect --format '{{ .Size }}' "$IMAGE") bytes)"
}

# scripts/image.sh run [PODMAN_OPTION...] [-- ZHUCUN_ARGUMENT...], e.g.
#   scripts/image.sh run -e ZHUCUN_HTTP_PORT=8001 -- serve dispatch
run() {
    local options=() flags
    while [ $# -gt 0 ] && [ "$1" != -- ]; do options+=("$1"); shift; done
    [ $# -eq 0 ] || shift
    mapfile -t flags < <(ulimit_flags)
    # As deploy/k8s/base/services/common.yaml runs it: uid 10001, read-only root filesystem
    # with a writable /tmp only, no capabilities, no privilege escalation.
    exec podman run --rm --runtime "$RUNTIME" "${flags[@]}" \
        --user 10001:10001 --read-only --read-only-tmpfs=false \
        --tmpfs /tmp:rw,nosuid,nodev,size=64m,mode=1777 \
        --cap-drop=ALL --security-opt=no-new-privileges --network=host \
        "${options[@]}" "$IMAGE" "$@"
}

clean() {
    local name
    for name in "$(qualified "$(python_base)")" "$(qualified "$(uv_base)")"; do
        if [ -n "$(stand_in_label "$name")" ]; then podman rmi "$name" >/dev/null && log "removed $name"; fi
    done
    rm -rf "$CACHE"
}

command="${1:-build}"
[ $# -eq 0 ] || shift
case "$command" in
    check) check ;;
    bases) check && containers_conf && bases ;;
    build) check && containers_conf && build ;;
    run) containers_conf && run "$@" ;;
    clean) clean ;;
    *) die "unknown command $command (build, bases, check, run or clean)" ;;
esac
