#!/usr/bin/env bash
# Images and a wheelhouse for building and running docker/ where no image registry can be
# reached, and PyPI cannot be reached from inside a container: only Debian's package archive
# (plain HTTP is fine: apt checks the archive's signatures) and, on this host, PyPI.
#
#   docker/local-images.sh               # both of the below
#   docker/local-images.sh images        # local base images from Debian packages
#   docker/local-images.sh wheelhouse    # docker/wheelhouse/ from uv.lock, with hashes
#   docker/local-images.sh env           # the variables that make compose use them
#
# images: debootstrap a minimal Debian, `docker import` it, and build on it with apt:
#   vouch-local/debian:bookworm   the base
#   vouch-local/python:bookworm   python3 + venv   (--build-arg PYTHON_IMAGE=...)
#   vouch-local/redis:bookworm    redis-server     (VOUCH_REDIS_IMAGE)
#   vouch-local/caddy:bookworm    caddy            (VOUCH_CADDY_IMAGE)
#   vouch-local/moto:bookworm     the local AWS emulator, from uv.lock's moto (VOUCH_MOTO_IMAGE)
# Images that exist are kept; --rebuild makes them again. Needs root, debootstrap, docker
# and uv. Then build the broker with
#   docker build -f docker/Dockerfile -t vouch-broker:0.1.0 \
#       --build-arg PYTHON_IMAGE=vouch-local/python:bookworm --build-arg PYTHON_DEPS=wheelhouse .
#
# Settings (environment): DEBIAN_MIRROR (default http://deb.debian.org/debian),
# DEBIAN_SECURITY_MIRROR (http://deb.debian.org/debian-security), DEBIAN_SUITE (bookworm,
# whose python3 is 3.11), VOUCH_LOCAL_PREFIX (vouch-local).
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$HERE")"
SUITE="${DEBIAN_SUITE:-bookworm}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SECURITY_MIRROR="${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
PREFIX="${VOUCH_LOCAL_PREFIX:-vouch-local}"
PYTHON_VERSION=3.11 # the python3 of $SUITE: the wheels must match the image's interpreter
PIP_VERSION=25.2        # these two only download wheels, on the host
PACKAGING_VERSION=25.0
WHEELHOUSE="$HERE/wheelhouse"
# The classic builder: it honours --network host (apt inside the build reaches the archive
# on a host without a bridge network) and pulls no frontend image, as BuildKit would.
export DOCKER_BUILDKIT=0
TMP="$(mktemp -d /var/tmp/vouch-local-images.XXXXXX)"
trap 'rm -rf "$TMP"' EXIT

log() { printf '[local-images] %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

ARCH="$(uname -m)"
case "$ARCH" in
x86_64) DEB_ARCH=amd64 ;;
aarch64) DEB_ARCH=arm64 ;;
*) die "unsupported architecture $ARCH" ;;
esac

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

# A Dockerfile on stdin, built with the host's network; context $2 (default: none). Its
# output is shown only if it fails (the classic builder prints a deprecation notice).
build() {
  local tag="$1" context="${2:-}" out="$TMP/build.log"
  log "building $tag"
  if [[ -n "$context" ]]; then
    set -- --file - "$context"
  else
    set -- -
  fi
  local started=$SECONDS
  if ! docker build --network host --tag "$tag" "$@" >"$out" 2>&1; then
    tail -n 30 "$out" >&2
    die "docker build of $tag failed"
  fi
  log "built $tag in $((SECONDS - started)) s"
}

base_image() {
  local tag="$PREFIX/debian:$SUITE"
  if have_image "$tag" && [[ -z "$REBUILD" ]]; then return; fi
  [[ "$(id -u)" == 0 ]] || die "debootstrap needs root"
  command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install debootstrap)"
  local dir="$TMP/debootstrap"
  mkdir -p "$dir"
  local started=$SECONDS
  log "debootstrap $SUITE ($DEB_ARCH) from $MIRROR"
  local attempt
  for attempt in 1 2; do # a second try for a mirror's hiccup
    if debootstrap --variant=minbase --arch="$DEB_ARCH" "$SUITE" "$dir/root" "$MIRROR" \
      >"$dir/debootstrap.log" 2>&1; then
      break
    fi
    tail -20 "$dir/debootstrap.log" >&2
    ((attempt == 1)) || die "debootstrap failed"
    log "debootstrap failed; trying again"
    rm -rf "$dir/root"
  done
  local root="$dir/root"
  rm -f "$root/etc/apt/sources.list"
  cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY_MIRROR
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  # As in Debian's own container images: no service starts from a package's postinst, no
  # documentation beyond the copyright files, no recommends.
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
  chmod 755 "$root/usr/sbin/policy-rc.d"
  cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
EOF
  printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
    >"$root/etc/apt/apt.conf.d/docker-no-recommends"
  printf 'Acquire::Retries "3";\n' >"$root/etc/apt/apt.conf.d/docker-retries"
  find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  rm -rf "$root"/usr/share/{man,info,locale}/* "$root"/var/cache/apt/archives/*.deb \
    "$root"/var/cache/apt/*.bin "$root"/var/lib/apt/lists/* "$root"/var/log/*.log
  log "importing $tag"
  tar --numeric-owner -C "$root" -c . |
    docker import --change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' - "$tag" >/dev/null
  log "made $tag in $((SECONDS - started)) s"
}

# A local image FROM the base with Debian packages; the rest of the Dockerfile on stdin.
apt_image() {
  local name="$1" packages="$2" tail
  local tag="$PREFIX/$name:$SUITE"
  if have_image "$tag" && [[ -z "$REBUILD" ]]; then return; fi
  tail="$(cat)"
  build "$tag" <<EOF
FROM $PREFIX/debian:$SUITE
RUN apt-get update -qq \\
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $packages >/dev/null \\
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log
$tail
EOF
}

cmd_images() {
  command -v docker >/dev/null || die "docker is not installed"
  docker info >/dev/null 2>&1 || die "no Docker engine answers (start dockerd)"
  base_image
  apt_image python "python3 python3-venv ca-certificates" <<'EOF'
CMD ["python3"]
EOF
  # The official image's layout: config in the command line, data in /data, user redis.
  apt_image redis "redis-server" <<'EOF'
RUN mkdir -p /data /usr/local/etc/redis && chown redis:redis /data
WORKDIR /data
USER redis
EXPOSE 6379
CMD ["redis-server"]
EOF
  # The official image's layout: /etc/caddy/Caddyfile, state in /data and /config.
  apt_image caddy "caddy ca-certificates" <<'EOF'
ENV XDG_CONFIG_HOME=/config XDG_DATA_HOME=/data
RUN mkdir -p /config /data /etc/caddy
EXPOSE 80 443
CMD ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]
EOF
  moto_image
}

# moto's server at the version uv.lock pins, its dependencies at the lock's versions. Not the
# whole moto[server] extra: that brings every service's dependencies (cfn-lint, docker, ...)
# and triples the image; the broker only calls IAM, STS and KMS, which need none of them.
moto_image() {
  local tag="$PREFIX/moto:$SUITE"
  if have_image "$tag" && [[ -z "$REBUILD" ]]; then return; fi
  local dir="$TMP/moto"
  mkdir -p "$dir"
  (cd "$ROOT" && uv export --frozen --all-groups --no-emit-workspace --no-hashes --no-header \
    --no-annotate --format requirements.txt --quiet) >"$dir/lock-pins.txt"
  printf '%s\n' moto flask flask-cors | uv pip compile - --quiet --constraints "$dir/lock-pins.txt" \
    --generate-hashes --no-header --python-version "$PYTHON_VERSION" \
    --python-platform "$ARCH-unknown-linux-gnu" --output-file "$dir/requirements.txt"
  download "$dir" "$dir/requirements.txt"
  build "$tag" "$dir" <<EOF
FROM $PREFIX/python:$SUITE
COPY . /wheels
RUN python3 -m venv /opt/moto \\
    && /opt/moto/bin/pip install --quiet --disable-pip-version-check --no-cache-dir \\
        --no-index --find-links /wheels --only-binary :all: --require-hashes \\
        -r /wheels/requirements.txt \\
    && rm -rf /wheels
USER nobody
EXPOSE 5000
ENTRYPOINT ["/opt/moto/bin/moto_server", "-H", "0.0.0.0", "-p", "5000"]
EOF
}

# Binary wheels for the image's platform and Python (not the host's), hash-checked: every
# requirement whose marker holds for some $PYTHON_VERSION.x on Linux (docker/wheelhouse.py).
download() {
  local dest="$1"
  shift
  local platforms=() v req list
  for v in 17 24 27 28 31 34 35 36; do platforms+=(--platform "manylinux_2_${v}_$ARCH"); done
  platforms+=(--platform "manylinux2014_$ARCH")
  for req in "$@"; do # one file at a time: two files may pin one package differently
    list="$(mktemp "$TMP/download.XXXXXX")"
    uv run --quiet --no-project --python "$PYTHON_VERSION" --with "packaging==$PACKAGING_VERSION" \
      python "$HERE/wheelhouse.py" --machine "$ARCH" --python "$PYTHON_VERSION" "$req" >"$list"
    uv tool run --quiet --python "$PYTHON_VERSION" --from "pip==$PIP_VERSION" pip download \
      -qq --disable-pip-version-check --no-deps --require-hashes --only-binary :all: \
      --implementation cp --python-version "$PYTHON_VERSION" --abi "cp${PYTHON_VERSION/./}" \
      "${platforms[@]}" --dest "$dest" --requirement "$list"
  done
}

cmd_wheelhouse() {
  command -v uv >/dev/null || die "uv is not installed"
  log "wheelhouse in $WHEELHOUSE from uv.lock"
  find "$WHEELHOUSE" -mindepth 1 -not -name README.md -delete
  # The same export the image runs in index mode (docker/Dockerfile).
  (cd "$ROOT" && uv export --frozen --no-dev --no-emit-workspace --no-header \
    --format requirements.txt --quiet) >"$WHEELHOUSE/requirements.txt"
  # The wheel's build backend: not in uv.lock, so pinned here, with hashes, when made.
  python3 -c 'import tomllib, sys; print("\n".join(tomllib.load(open(sys.argv[1], "rb"))["build-system"]["requires"]))' \
    "$ROOT/pyproject.toml" |
    uv pip compile - --quiet --generate-hashes --no-header --python-version "$PYTHON_VERSION" \
      --python-platform "$ARCH-unknown-linux-gnu" --output-file "$WHEELHOUSE/build-requirements.txt"
  download "$WHEELHOUSE" "$WHEELHOUSE/requirements.txt" "$WHEELHOUSE/build-requirements.txt"
  (cd "$ROOT" && sha256sum uv.lock) >"$WHEELHOUSE/uv.lock.sha256"
  log "$(find "$WHEELHOUSE" -name '*.whl' | wc -l) wheels, $(du -sh "$WHEELHOUSE" | cut -f1)"
}

cmd_env() {
  cat <<EOF
VOUCH_PYTHON_IMAGE=$PREFIX/python:$SUITE
VOUCH_PYTHON_DEPS=wheelhouse
VOUCH_REDIS_IMAGE=$PREFIX/redis:$SUITE
VOUCH_CADDY_IMAGE=$PREFIX/caddy:$SUITE
VOUCH_MOTO_IMAGE=$PREFIX/moto:$SUITE
EOF
}

REBUILD=""
ARGS=()
for arg in "$@"; do
  case "$arg" in
  --rebuild) REBUILD=1 ;;
  -h | --help)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
    ;;
  *) ARGS+=("$arg") ;;
  esac
done
set -- "${ARGS[@]+"${ARGS[@]}"}"
case "${1:-all}" in
all)
  cmd_wheelhouse
  cmd_images
  ;;
images) cmd_images ;;
wheelhouse) cmd_wheelhouse ;;
env) cmd_env ;;
*) die "unknown command '$1' (all, images, wheelhouse, env)" ;;
esac
