#!/usr/bin/env bash
# Installs what the e2e tests run against: distribution's registry, containerd + ctr,
# skopeo, nginx, runc, the ECR credential helper, an extracted (not installed) dockerd 20.10
# from Debian's docker.io (BuildKit 0.8), and, extracted from Debian's newer suites' packages,
# dockerd 26 with buildx (trixie, BuildKit 0.13) and dockerd 28.5 with buildx (forky,
# BuildKit 0.25).
# Idempotent; starts no service and leaves no nginx running.
set -euo pipefail

cache="${REGSHIM_TEST_CACHE:-$HOME/.cache/regshim-test}"

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    echo "ensure-deps: need root (or sudo) to run: $*" >&2
    exit 1
  fi
}

apt_updated=0
apt_update_once() {
  if [ "$apt_updated" -eq 0 ]; then
    as_root apt-get update -qq
    echo "ran apt-get update"
    apt_updated=1
  fi
}

# Debian's nginx package starts a system nginx on port 80 when installed: stop it.
# Never fails: there may be no systemd, no init script, or nothing running.
stop_system_nginx() {
  if as_root systemctl stop nginx >/dev/null 2>&1; then
    as_root systemctl disable nginx >/dev/null 2>&1 || true
    echo "stopped and disabled the nginx service"
  elif as_root service nginx stop >/dev/null 2>&1; then
    echo "stopped the nginx service"
  fi
  local pid
  pid=$(cat /run/nginx.pid 2>/dev/null || true)
  # Only a PID whose process really is nginx: the pidfile may be stale.
  if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null || true)" = "nginx" ]; then
    as_root kill "$pid" 2>/dev/null || true
    echo "killed the system nginx (pid $pid)"
  fi
}

missing=()
for c in docker-registry containerd ctr skopeo nginx openssl runc docker-credential-ecr-login tmux; do
  # /usr/sbin is not on every user's PATH, and nginx lives there.
  command -v "$c" >/dev/null 2>&1 || [ -x "/usr/sbin/$c" ] || missing+=("$c")
done
if [ "${#missing[@]}" -gt 0 ]; then
  apt_update_once
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    docker-registry containerd skopeo nginx-light openssl runc amazon-ecr-credential-helper tmux >/dev/null
  echo "installed docker-registry containerd skopeo nginx-light openssl runc amazon-ecr-credential-helper tmux (missing: ${missing[*]})"
  stop_system_nginx
else
  echo "docker-registry, containerd, ctr, skopeo, nginx, openssl, runc, docker-credential-ecr-login, tmux already present"
fi

if [ -x "$cache/docker.io/usr/sbin/dockerd" ]; then
  echo "dockerd already extracted in $cache/docker.io"
else
  mkdir -p "$cache"
  # apt-get download needs fresh lists on a machine that never ran apt-get update.
  if ! (cd "$cache" && apt-get download docker.io >/dev/null 2>&1); then
    apt_update_once
    (cd "$cache" && apt-get download docker.io >/dev/null)
  fi
  deb=$(ls -t "$cache"/docker.io_*.deb | head -n 1)
  echo "downloaded $deb"
  rm -rf "$cache/docker.io"
  dpkg-deb -x "$deb" "$cache/docker.io"
  echo "extracted dockerd into $cache/docker.io"
fi

# Packages of a newer Debian suite, downloaded with a private apt configuration (the
# system's sources never name that suite) and extracted into $cache/SUITE/root, never
# installed. bookworm's runc (above) runs their containers: theirs needs a newer glibc.
# Prints the version of every package it extracted, or finds extracted.
extract_suite() {
  local suite=$1 deb
  shift
  local dir="$cache/$suite"
  if [ -x "$dir/root/usr/sbin/dockerd" ] && [ -f "$dir/root/.complete" ]; then
    echo "$suite's packages already extracted in $dir/root"
  else
    local apt_dir="$dir/apt"
    mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$dir/debs"
    echo "deb http://deb.debian.org/debian $suite main" >"$apt_dir/sources.list"
    local private_apt=(
      -o "Dir::Etc::sourcelist=$apt_dir/sources.list" -o Dir::Etc::sourceparts=/dev/null
      -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
      # The cache lives under $HOME, which apt's unprivileged download user may not reach.
      -o APT::Sandbox::User=root
    )
    apt-get "${private_apt[@]}" update -qq
    rm -f "$dir"/debs/*.deb
    (cd "$dir/debs" && apt-get "${private_apt[@]}" download "$@" >/dev/null)
    rm -rf "$dir/root"
    for deb in "$dir"/debs/*.deb; do
      dpkg-deb -x "$deb" "$dir/root"
    done
    touch "$dir/root/.complete"
    # The lists served one download; the next run starts from fresh ones.
    rm -rf "$apt_dir"
    echo "extracted $* from $suite into $dir/root"
  fi
  for deb in "$dir"/debs/*.deb; do
    [ -f "$deb" ] || continue
    echo "  $suite: $(dpkg-deb -f "$deb" Package) $(dpkg-deb -f "$deb" Version)"
  done
}

# dockerd 26.1.5 (BuildKit v0.13.2), docker-buildx 0.13.1, containerd 1.7 and tini-static
# (the static binary the builds' RUN steps run).
extract_suite trixie docker.io docker-cli docker-buildx containerd tini
# dockerd 28.5.2 (BuildKit 0.25, whose default cache export is the image-manifest form),
# docker-buildx 0.29.1 and containerd 2.1. Testing moves on: the versions printed are the
# ones the tests ran with.
extract_suite forky docker.io docker-cli docker-buildx containerd
