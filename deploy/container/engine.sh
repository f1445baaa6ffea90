#!/bin/sh
# The container engine with the flags this machine needs, in one place for the Makefile,
# tests/test_container.py and docs/deploy.md:
#   engine.sh name                      docker (a daemon answers) or podman; exits 1 saying why if neither
#   engine.sh base-image                Debian 12 + Python 3.11 from apt's mirror, where no registry answers
#   engine.sh image [BUILD OPTIONS]     the runtime image $IMAGE from this checkout
#   engine.sh healthy CONTAINER [S]     wait up to S seconds (300) until the image's health check passes
#   engine.sh compose ARGS              docker compose, or podman-compose
#   engine.sh compose-up | compose-down the stack of docker-compose.yml, healthy; its keys in build/compose/
#   engine.sh kube ARGS                 podman kube (play, down) with this machine's runtime and rlimits
#   engine.sh ARGS                      the engine itself: run, exec, stop, logs, ...
# Settings from the environment: ENGINE (docker|podman), IMAGE, BASE_IMAGE (default: the Dockerfile's
# when it can be had, else the local base), PIP_CONF (a pip config file: index settings), CA_BUNDLE
# (default: the system's), WHEELS (a wheel folder; default: pip's find-links), DEBIAN_MIRROR, and for
# Compose: COMPOSE_PROJECT (default asl-serve; another name is another stack, its keys under
# build/compose/NAME/) and the host ports of docker-compose.yml (ASL_INFERENCE_PORT, ..., ASL_DEMO_PORT).
set -eu
cd "$(dirname "$0")/../.."
IMAGE=${IMAGE:-asl-serve:0.1.0}
LOCAL_BASE=localhost/debian-python:3.11-bookworm
PROJECT=${COMPOSE_PROJECT:-asl-serve}  # docker-compose.yml's name, which podman-compose 1.0 does not read
KEYS=build/compose${COMPOSE_PROJECT:+/$COMPOSE_PROJECT}/key_file.json

name() {
    if [ -n "${ENGINE:-}" ]; then echo "$ENGINE"
    elif command -v docker >/dev/null && docker info >/dev/null 2>&1; then echo docker
    elif command -v podman >/dev/null && podman info >/dev/null 2>&1; then echo podman
    else
        echo "no container engine: no Docker daemon answers and podman is not installed" \
             "(apt-get install podman runc)" >&2
        return 1
    fi
}
E=$(name)

# Podman here: crun fails on rlimits and hybrid cgroups, so runc; the default rlimits exceed what the
# sandbox allows, so explicit ones; health checks need systemd timers, so `healthy` runs them itself.
ULIMITS="nofile=4096:4096 nproc=1000:1000"
RUNTIME='' LIMITS=''
if [ "$E" = podman ]; then
    RUNTIME=$(command -v runc || true)
    LIMITS=$(printf -- '--ulimit %s ' $ULIMITS)
fi

e() {  # the engine, on runc where podman has it
    if [ -n "$RUNTIME" ]; then "$E" --runtime "$RUNTIME" "$@"; else "$E" "$@"; fi
}

engine() {
    if [ "$E" = podman ]; then
        # shellcheck disable=SC2086  # LIMITS is two options
        case $1 in
            run|create) cmd=$1; shift; set -- "$cmd" $LIMITS "$@" ;;
            build) shift; set -- build $LIMITS --network=host --format=docker "$@" ;;  # docker: HEALTHCHECK kept
        esac
    fi
    e "$@"
}

apt_mirror() {  # the URI apt fetches suite $1 from
    # shellcheck disable=SC2016  # apt's own $(FIELD) syntax
    apt-get indextargets --format '$(REPO_URI)' "Codename: $1" 2>/dev/null | head -1
}

base_image() {
    mirror=${DEBIAN_MIRROR:-$(apt_mirror bookworm)}
    mirror=${mirror:-http://deb.debian.org/debian}
    security=$(apt_mirror bookworm-security)
    root=$(mktemp -d)
    trap 'rm -rf "$root"' EXIT
    debootstrap --variant=minbase bookworm "$root" "$mirror"
    # Slim like the official images: no manuals, documentation or translations, now or from later installs.
    printf 'path-exclude /usr/share/%s/*\n' doc man info locale >"$root/etc/dpkg/dpkg.cfg.d/slim"
    echo 'path-include /usr/share/doc/*/copyright' >>"$root/etc/dpkg/dpkg.cfg.d/slim"
    find "$root/usr/share/doc" -type f ! -name copyright -delete
    rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/*
    printf 'deb %s bookworm main\ndeb %s bookworm-updates main\n' "$mirror" "$mirror" >"$root/etc/apt/sources.list"
    [ -z "$security" ] || echo "deb $security bookworm-security main" >>"$root/etc/apt/sources.list"
    DEBIAN_FRONTEND=noninteractive chroot "$root" sh -c 'apt-get update -q && apt-get upgrade -y -q \
        && apt-get install -y -q --no-install-recommends python3.11 python3.11-venv \
        && apt-get clean && rm -rf /var/lib/apt/lists/*'
    tar -C "$root" -c . | e import --change 'ENV LANG=C.UTF-8' - "$LOCAL_BASE"
}

default_base() {
    official=$(sed -n 's/^ARG BASE_IMAGE=//p' Dockerfile)
    if e image inspect "$official" >/dev/null 2>&1 || e pull -q "$official" >/dev/null 2>&1; then
        echo "$official"
        return
    fi
    if ! e image inspect "$LOCAL_BASE" >/dev/null 2>&1; then
        echo "no registry answers for $official: making $LOCAL_BASE (debootstrap)" >&2
        base_image >&2
    fi
    echo "$LOCAL_BASE"
}

image() {
    base=${BASE_IMAGE:-$(default_base)}
    ca=${CA_BUNDLE-/etc/ssl/certs/ca-certificates.crt}
    wheels=${WHEELS-${PIP_FIND_LINKS:-$(pip3 config get global.find-links 2>/dev/null || true)}}
    set -- --build-arg BASE_IMAGE="$base" --tag "$IMAGE" "$@"
    [ -z "${PIP_CONF:-}" ] || set -- --secret id=pip.conf,src="$PIP_CONF" "$@"
    [ ! -f "$ca" ] || set -- --secret id=ca.crt,src="$ca" "$@"
    [ ! -d "$wheels" ] || set -- --build-context wheels="$wheels" "$@"
    echo "building $IMAGE on $base${wheels:+, wheels from $wheels}" >&2
    engine build "$@" .
}

healthy() {
    deadline=$(($(date +%s) + ${2:-300}))
    until if [ "$E" = podman ]; then e healthcheck run "$1" >/dev/null 2>&1
          else [ "$(e inspect --format '{{.State.Health.Status}}' "$1")" = healthy ]; fi; do
        if [ "$(e inspect --format '{{.State.Running}}' "$1")" != true ] || [ "$(date +%s)" -ge "$deadline" ]; then
            echo "$1 is not healthy:" >&2
            e logs --tail 20 "$1" >&2
            return 1
        fi
        sleep 3
    done
}

compose() {
    if [ "$E" = podman ]; then
        podman-compose --project-name "$PROJECT" ${RUNTIME:+--podman-args="--runtime $RUNTIME"} \
            --podman-run-args="$LIMITS" "$@"
    else
        docker compose --project-name "$PROJECT" "$@"
    fi
}

service() {  # the container of a compose service
    e ps -q --filter "label=com.docker.compose.project=$PROJECT" --filter "label=com.docker.compose.service=$1"
}

kube() {  # podman kube has no --runtime or --ulimit: the same settings through a containers.conf of its own
    [ "$E" = podman ] || { echo "kube play needs podman (apt-get install podman catatonit)" >&2; return 1; }
    conf=$(mktemp)
    trap 'rm -f "$conf"' EXIT
    printf '[containers]\ndefault_ulimits = [%s]\n' "$(printf '"%s", ' $ULIMITS)" >"$conf"
    [ -z "$RUNTIME" ] || printf '[engine]\nruntime = "%s"\n' "$RUNTIME" >>"$conf"
    CONTAINERS_CONF=$conf podman kube "$@"
}

compose_up() {  # TorchServe until healthy, then the demo (Podman 4 ignores depends_on conditions)
    compose up -d --no-build torchserve
    healthy "$(service torchserve)"
    compose up -d --no-build --no-deps demo
    healthy "$(service demo)" 60
    mkdir -p "$(dirname "$KEYS")"
    (umask 077 && e exec "$(service torchserve)" cat key_file.json >"$KEYS")
    echo "TorchServe on 127.0.0.1:${ASL_INFERENCE_PORT:-8080} (REST), the demo on http://127.0.0.1:${ASL_DEMO_PORT:-8000}/;" \
         "this start's keys in $KEYS (ASL_KEY_FILE=$KEYS make loadtest)"
}

case ${1:-} in
    name) echo "$E" ;;
    base-image) base_image ;;
    image) shift; image "$@" ;;
    healthy) shift; healthy "$@" ;;
    compose) shift; compose "$@" ;;
    compose-up) compose_up ;;
    compose-down) compose down ;;
    kube) shift; kube "$@" ;;
    "") sed -n '2,16s/^# \{0,1\}//p' "$0"; exit 2 ;;
    *) engine "$@" ;;
esac
