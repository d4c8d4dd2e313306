# Shared set-up for scripts/demo.sh and scripts/test.sh: Debian packages, build, a private
# PostgreSQL installation tree and a throwaway cluster, all inside the checkout (.cdp/).
# Nothing here touches a system cluster: the server runs from .cdp/install on a Unix socket only.
set -euo pipefail

CDP_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CDP_STATE="$CDP_ROOT/.cdp"
PG_MAJOR=${PG_MAJOR:-15}
SYSTEM_PG_CONFIG=/usr/lib/postgresql/$PG_MAJOR/bin/pg_config
export PG_CONFIG=${PG_CONFIG:-$SYSTEM_PG_CONFIG}
CDP_INSTALL="$CDP_STATE/install"                  # copy of the server + our extension (make install DESTDIR)
CDP_BIN="$CDP_INSTALL/usr/lib/postgresql/$PG_MAJOR/bin"
CDP_DATA="$CDP_STATE/data"
CDP_RUN="$CDP_STATE/run"                          # socket directory and server log
export PGHOST="$CDP_RUN" PGPORT=${CDP_PORT:-54329} PGUSER=postgres PGDATABASE=postgres

# Debian packages the project builds, tests and demos with.
CDP_PACKAGES=(make cmake g++ postgresql-$PG_MAJOR postgresql-server-dev-$PG_MAJOR postgresql-client-$PG_MAJOR
  libboost-dev libphonenumber-dev libgtest-dev)

log() { printf '\n==> %s\n' "$*"; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

cdp_install_packages() {
  local missing=() pkg
  for pkg in "${CDP_PACKAGES[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# The OS user that owns the cluster: initdb refuses root, so root hands it to "postgres".
cdp_server_user() { if [ "$(id -u)" = 0 ]; then echo postgres; else id -un; fi; }
as_server() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

cdp_build() {
  log "building pg_cdp"
  make -C "$CDP_ROOT" -s -j"$(nproc)" >/dev/null
  # A private, relocatable copy of the server (PostgreSQL finds its share/ and lib/ relative to bin/),
  # so the extension installs into the checkout instead of the system directories.
  local stamp="$CDP_INSTALL/.source-version" version
  version=$("$SYSTEM_PG_CONFIG" --version)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$version" ]; then
    rm -rf "$CDP_INSTALL"
    mkdir -p "$CDP_INSTALL/usr/lib/postgresql" "$CDP_INSTALL/usr/share/postgresql"
    cp -a "/usr/lib/postgresql/$PG_MAJOR" "$CDP_INSTALL/usr/lib/postgresql/"
    cp -a "/usr/share/postgresql/$PG_MAJOR" "$CDP_INSTALL/usr/share/postgresql/"
    echo "$version" >"$stamp"
  fi
  make -C "$CDP_ROOT" -s install DESTDIR="$CDP_INSTALL" >/dev/null
}

# The server user must be able to reach the checkout: give search (x) permission on our own
# parent directories where it is missing (a mktemp -d parent is 0700).
cdp_make_reachable() {
  [ "$(id -u)" = 0 ] || return 0
  local dir="$CDP_STATE"
  while [ "$dir" != / ]; do
    if ! runuser -u postgres -- test -x "$dir" 2>/dev/null; then chmod o+x "$dir"; fi
    dir=$(dirname "$dir")
  done
}

cdp_cluster_start() {
  mkdir -p "$CDP_STATE" "$CDP_RUN"
  cdp_make_reachable
  [ "$(id -u)" = 0 ] && chown postgres "$CDP_RUN"
  if [ ! -f "$CDP_DATA/PG_VERSION" ]; then
    log "creating a throwaway cluster in $CDP_DATA"
    mkdir -p "$CDP_DATA"
    [ "$(id -u)" = 0 ] && chown postgres "$CDP_DATA"
    as_server "$CDP_BIN/initdb" -D "$CDP_DATA" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
  fi
  if ! as_server "$CDP_BIN/pg_ctl" -D "$CDP_DATA" status >/dev/null 2>&1; then
    log "starting the cluster (socket $CDP_RUN, port $PGPORT)"
    as_server "$CDP_BIN/pg_ctl" -D "$CDP_DATA" -l "$CDP_RUN/server.log" -w -t 60 \
      -o "-c listen_addresses='' -k '$CDP_RUN' -p $PGPORT -c max_parallel_workers_per_gather=2" start >/dev/null
  else
    # The extension may have been rebuilt: new sessions load the new library.
    log "cluster already running (socket $CDP_RUN, port $PGPORT)"
  fi
}

cdp_cluster_stop() {
  if [ -f "$CDP_DATA/PG_VERSION" ] && as_server "$CDP_BIN/pg_ctl" -D "$CDP_DATA" status >/dev/null 2>&1; then
    as_server "$CDP_BIN/pg_ctl" -D "$CDP_DATA" -m fast -w stop >/dev/null
  fi
}
