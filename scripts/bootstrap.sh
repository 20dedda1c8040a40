#!/usr/bin/env bash
# Installs what the tests and the demo need on a fresh Debian machine without Docker:
# uv, the Python environment, PostgreSQL's server binaries and the Kafka broker jars.
# Idempotent and quick when everything is already there; safe to run again.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

UV_VERSION="0.13.9"
export DEBIAN_FRONTEND=noninteractive

log() { printf '[bootstrap] %s\n' "$*" >&2; }
die() { printf '[bootstrap] error: %s\n' "$*" >&2; exit 1; }

# Package installs need root; a developer who is not root gets sudo, if there is one.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo --preserve-env=DEBIAN_FRONTEND "$@"
    else
        die "need root to run: $* (no sudo here)"
    fi
}

apt_updated=0
apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install $* by hand"
    if [ "$apt_updated" -eq 0 ]; then
        as_root apt-get update -qq
        apt_updated=1
    fi
    as_root apt-get install -y -qq --no-install-recommends "$@"
}

# -- uv --------------------------------------------------------------------------------------
uv_version() { uv --version 2>/dev/null | awk '{print $2}'; }
if ! command -v uv >/dev/null 2>&1 || [ "$(uv_version)" != "$UV_VERSION" ]; then
    log "installing uv $UV_VERSION with pip"
    python3 -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION" \
        || python3 -m pip install --quiet --disable-pip-version-check \
            --break-system-packages "uv==$UV_VERSION"
    # pyenv only sees a new console script after a rehash.
    if command -v pyenv >/dev/null 2>&1; then pyenv rehash || true; fi
    hash -r
    [ "$(uv_version)" = "$UV_VERSION" ] \
        || die "uv $UV_VERSION was installed but \`uv\` on PATH is '$(command -v uv || echo none)'"
fi

# -- make (the Makefile drives demo/test/lint) ---------------------------------------------
if ! command -v make >/dev/null 2>&1; then
    log "installing make"
    apt_install make
fi

# -- Python environment ----------------------------------------------------------------------
uv sync --frozen --quiet

# -- PostgreSQL server binaries (initdb, pg_ctl) ---------------------------------------------
have_postgres() {
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        return 0
    fi
    compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null
}
if ! have_postgres; then
    log "installing Debian's PostgreSQL server packages"
    # Debian's package would otherwise create and start a 'main' cluster on port 5432 that
    # nothing here uses (the project runs private initdb clusters). createcluster.conf
    # includes createcluster.d/, so a drop-in there switches it off without a conffile clash.
    as_root mkdir -p /etc/postgresql-common/createcluster.d
    echo "create_main_cluster = false" \
        | as_root tee /etc/postgresql-common/createcluster.d/zhucun-no-main-cluster.conf >/dev/null
    apt_install postgresql
    have_postgres || die "postgresql was installed but initdb/pg_ctl cannot be found"
fi

# -- Java 17+ and Maven (for the Kafka broker) ----------------------------------------------
command -v java >/dev/null 2>&1 \
    || die "Java 17 or newer is required for Kafka (Debian: apt-get install -y openjdk-17-jdk-headless)"
java_major="$(java -version 2>&1 | sed -nE '1s/.*version "([0-9]+).*/\1/p')"
[ "${java_major:-0}" -ge 17 ] \
    || die "Kafka 4 needs Java 17 or newer; \`java\` is version ${java_major:-unknown}"
command -v mvn >/dev/null 2>&1 \
    || die "Maven is required once to fetch the Kafka jars (Debian: apt-get install -y maven)"

# -- promtool (Prometheus's rule checker: tests/deploy/test_monitoring.py) --------------------
# Only the promtool binary of Debian's prometheus package: installing the package would also
# set up (and, without systemd, start) a Prometheus server that nothing here uses.
if ! command -v promtool >/dev/null 2>&1; then
    log "installing promtool from Debian's prometheus package"
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install promtool by hand"
    if [ "$apt_updated" -eq 0 ]; then
        as_root apt-get update -qq
        apt_updated=1
    fi
    promtool_tmp="$(mktemp -d)"
    (cd "$promtool_tmp" && apt-get download -qq prometheus 2>/dev/null)
    dpkg-deb -x "$promtool_tmp"/prometheus_*.deb "$promtool_tmp/root"
    as_root install -m 0755 "$promtool_tmp/root/usr/bin/promtool" /usr/local/bin/promtool
    rm -rf "$promtool_tmp"
    command -v promtool >/dev/null 2>&1 || die "promtool was installed but is not on PATH"
fi

# -- podman (builds and runs the image: tests/production/test_image.py) -----------------------
# runc because podman's default runtime, crun, fails on these machines' hybrid cgroups;
# debootstrap makes the stand-in base images (scripts/image.sh). Without them the image tests
# are skipped, loudly, and the rest still runs: so a failure here is a warning, not an error.
if ! command -v podman >/dev/null 2>&1 || ! command -v runc >/dev/null 2>&1 \
    || ! command -v debootstrap >/dev/null 2>&1; then
    log "installing podman, runc and debootstrap (the image build and run)"
    if command -v apt-get >/dev/null 2>&1 && (apt_install podman runc debootstrap); then
        apt_updated=1
    else
        log "warning: podman could not be installed; the image will not be built or run here"
    fi
fi

# -- Kafka broker jars -------------------------------------------------------------------------
# One implementation of "fetch unless the jars match this pom's sha256": zhucun.infra's.
uv run --frozen --quiet python -c \
    'from zhucun.infra import ensure_kafka_jars; print(ensure_kafka_jars())' >/dev/null

log "ready (uv $(uv_version), Java $java_major, PostgreSQL and Kafka jars present)"
