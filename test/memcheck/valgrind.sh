#!/usr/bin/env bash
# Memory-error hunt (not part of scripts/test.sh: it takes 15-30 minutes): runs the pg_regress suite
# against a second throwaway cluster whose server runs under valgrind memcheck, then reports every
# valgrind error whose stack passes through pg_cdp.so. Passes when there is none.
#   bash test/memcheck/valgrind.sh [test names...]     (default: every sql/*.sql)
# Debian's server is not built with USE_VALGRIND, so palloc'd memory is not tracked chunk by chunk:
# this finds invalid reads/writes and uses of uninitialised values in pg_cdp's own (C++ heap) memory,
# and uninitialised bytes that reach the server's buffers or files.
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

cdp_install_packages valgrind
cdp_build

data="$CDP_STATE/valgrind/data"
logs="$CDP_STATE/valgrind/logs"
port=$((PGPORT + 1))
rm -rf "$CDP_STATE/valgrind"
mkdir -p "$data" "$logs"
cdp_make_reachable
[ "$(id -u)" = 0 ] && chown -R postgres "$CDP_STATE/valgrind" "$CDP_RUN"
as_server "$CDP_BIN/initdb" -D "$data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null

log "starting the server under valgrind (port $port)"
# --trace-children follows the backends the postmaster forks; the server's own known false positives
# (uninitialised padding it writes to WAL and sockets) are suppressed as in PostgreSQL's valgrind.supp.
as_server bash -c "valgrind --quiet --trace-children=yes --track-origins=yes --num-callers=30 \
  --suppressions='$CDP_ROOT/test/memcheck/postgres.supp' --log-file='$logs/%p.log' \
  '$CDP_BIN/postgres' -D '$data' -c listen_addresses='' -k '$CDP_RUN' -p $port \
  -c max_parallel_workers_per_gather=2 >'$logs/server.log' 2>&1 &"
stop_server() { as_server "$CDP_BIN/pg_ctl" -D "$data" -m fast -w -t 300 stop >/dev/null 2>&1 || true; }
trap stop_server EXIT
for _ in $(seq 1 120); do
  PGPORT=$port psql -qXAt -c 'SELECT 1' >/dev/null 2>&1 && break
  sleep 2
done

cd "$CDP_ROOT"
tests=("$@")
[ ${#tests[@]} = 0 ] && mapfile -t tests < <(ls sql/*.sql | xargs -n1 basename | sed 's/\.sql$//')
log "pg_regress under valgrind: ${#tests[@]} tests (output differences are not the point here)"
rm -rf results regression.diffs
PGPORT=$port make -s installcheck REGRESS="${tests[*]}" ISOLATION= EXTRA_REGRESS_OPTS="--max-connections=1" \
  >"$logs/installcheck.log" 2>&1 || true
grep -cE '\.\.\. ok' "$logs/installcheck.log" | sed 's/^/tests matching expected output under valgrind: /'
stop_server
trap - EXIT

# A report belongs to pg_cdp when any frame of its stack is in pg_cdp.so.
errors=0
for f in "$logs"/*.log; do
  [ "$(basename "$f")" = server.log ] || [ "$(basename "$f")" = installcheck.log ] && continue
  if grep -q 'pg_cdp.so' "$f"; then
    errors=$((errors + $(awk '/^==[0-9]+== [A-Z]/ { in_report = 1; cdp = 0 } /pg_cdp\.so/ { cdp = 1 }
                              /^==[0-9]+== $/ { if (in_report && cdp) n++; in_report = 0 } END { print n + 0 }' "$f")))
    echo "--- $f"
    sed -n '1,200p' "$f"
  fi
done
if [ "$errors" != 0 ]; then
  echo "valgrind: FAILED ($errors reports with pg_cdp.so on the stack; logs in $logs)"
  exit 1
fi
echo "valgrind: 1 passed, 0 failed (no report with pg_cdp.so on the stack; logs in $logs)"
