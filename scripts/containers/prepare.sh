#!/usr/bin/env bash
# Prepares a machine that reaches Debian's mirror and PyPI but no container registry:
# podman + runc + podman-compose, and local stand-ins for python:3.11-slim and postgres:16.
# Where a registry answers, the real images are pulled instead. Safe to run again: what
# is already installed, pulled or built is skipped.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${JOBSCHED_CONTAINERS_CACHE:-/var/cache/jobsched-containers}"
suite=bookworm   # Debian's python3 in bookworm is 3.11, as the images expect.
python_image=docker.io/library/python:3.11-slim
postgres_image=docker.io/library/postgres:16
stand_in_label=org.jobsched.stand-in

log() { printf '[containers] %s\n' "$*" >&2; }

install_packages() {
    local missing=()
    command -v podman >/dev/null || missing+=(podman)
    command -v runc >/dev/null || missing+=(runc)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    if ((${#missing[@]})); then
        log "installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    if ! command -v podman-compose >/dev/null; then
        # Debian's podman-compose is too old for the compose file; PyPI's is not.
        log "installing podman-compose into $cache/venv"
        python3 -m venv "$cache/venv"
        "$cache/venv/bin/pip" install -q 'podman-compose>=1.6,<2'
        ln -sf "$cache/venv/bin/podman-compose" /usr/local/bin/podman-compose
    fi
}

# crun fails on this kind of kernel's hybrid cgroups and on raising RLIMIT_NOFILE;
# there is no systemd to manage cgroups or to keep an events journal.
configure_runtime() {
    local conf=/etc/containers/containers.conf
    local begin="# BEGIN jobsched scripts/containers"
    local end="# END jobsched scripts/containers"
    mkdir -p /etc/containers
    [[ -f $conf ]] && grep -qF "$begin" "$conf" && return 0
    [[ -f $conf ]] && grep -qE '^\s*\[(containers|engine)\]' "$conf" && {
        log "$conf has its own [containers]/[engine] tables; set runtime = \"runc\" and the ulimits there"
        return 0
    }
    log "configuring $conf"
    cat >>"$conf" <<CONF
$begin
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
$end
CONF
}

debian_mirror() {
    local uri
    uri=$(grep -hs -E '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -1 || true)
    [[ -n $uri ]] || uri=$(grep -hs -E '^deb\s' /etc/apt/sources.list | awk '{print $2}' | grep -v security | head -1 || true)
    echo "${uri:-http://deb.debian.org/debian}"
}

# Debian's Python in a minimal root filesystem, with this host's CA bundle, since pip
# inside a build reaches PyPI only through the CAs this host trusts.
python_rootfs() {
    local tarball="$cache/$suite-python.tar"
    if [[ ! -f $tarball ]]; then
        local dir="$cache/rootfs.$$"
        log "debootstrap $suite from $(debian_mirror) (about a minute)"
        rm -rf "$dir"
        debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates \
            "$suite" "$dir" "$(debian_mirror)" >"$cache/debootstrap.log" 2>&1 \
            || { tail -20 "$cache/debootstrap.log" >&2; exit 1; }
        cp /etc/ssl/certs/ca-certificates.crt "$dir/etc/ssl/certs/ca-certificates.crt"
        rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/archives/*.deb
        tar -C "$dir" -cf "$tarball.part" .
        mv "$tarball.part" "$tarball"
        rm -rf "$dir"
    fi
    echo "$tarball"
}

# The real image when a registry answers, so that this script does no harm elsewhere.
present_or_pulled() {
    podman image exists "$1" && { log "$1 is there"; return 0; }
    timeout 300 podman pull -q "$1" >/dev/null 2>&1 && { log "pulled $1"; return 0; }
    log "no registry gave $1: building a local stand-in"
    return 1
}

build_python() {
    present_or_pulled "$python_image" && return 0
    local tarball
    tarball=$(python_rootfs)
    log "importing $python_image"
    podman import -q \
        --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
        --change "ENV LANG=C.UTF-8" \
        --change "LABEL $stand_in_label=debian-$suite-python3" \
        --change 'CMD ["python3"]' \
        "$tarball" "$python_image" >/dev/null
}

build_postgres() {
    present_or_pulled "$postgres_image" && return 0
    log "building $postgres_image from Debian's PostgreSQL"
    podman build -q --network host --pull=never --label "$stand_in_label=debian-$suite-postgresql" \
        -t "$postgres_image" -f "$here/postgres/Containerfile" "$here/postgres" >/dev/null
}

main() {
    [[ $(id -u) == 0 ]] || { log "run as root (apt-get, /etc/containers)"; exit 1; }
    mkdir -p "$cache"
    install_packages
    configure_runtime
    build_python
    build_postgres
    log "ready: $(podman --version), $(runc --version | head -1), $(podman-compose --version 2>/dev/null | head -1)"
}

main "$@"
