#!/usr/bin/env bash
# Every test, self-sufficient: install what is missing, build, run the core unit tests (ctest),
# then pg_regress and the isolation tests against a throwaway cluster inside the checkout.
# Exits non-zero on any failure. .ci/run calls exactly this.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cdp_install_packages
cdp_build

log "core unit tests (ctest)"
cmake -S "$CDP_ROOT" -B "$CDP_STATE/cmake" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$CDP_STATE/cmake" -j"$(nproc)" >/dev/null
unit_log="$CDP_STATE/ctest.log"
ctest --test-dir "$CDP_STATE/cmake" --output-on-failure | tee "$unit_log"
unit_passed=$(awk '/tests passed, [0-9]+ tests failed out of/ { print $NF - $4 }' "$unit_log")

cdp_cluster_start
trap cdp_cluster_stop EXIT

log "SQL regression and isolation tests (make installcheck)"
cd "$CDP_ROOT"
rm -rf results output_iso regression.diffs
status=0
make -s installcheck >"$CDP_STATE/installcheck.log" 2>&1 || status=$?
cat "$CDP_STATE/installcheck.log"
if [ "$status" != 0 ]; then
  for diffs in regression.diffs output_iso/regression.diffs; do [ -f "$diffs" ] && cat "$diffs"; done
fi
# pg_dump / restore round trip of everything users keep in pg_cdp (config tables, results, sequences).
dump_status=0
bash "$CDP_ROOT/test/dump_restore.sh" | tee "$CDP_STATE/dump_restore.log" || dump_status=$?
dump_passed=$(sed -n 's/^dump_restore: \([0-9]*\) passed, \([0-9]*\) failed$/\1/p' "$CDP_STATE/dump_restore.log")
dump_failed=$(sed -n 's/^dump_restore: \([0-9]*\) passed, \([0-9]*\) failed$/\2/p' "$CDP_STATE/dump_restore.log")
[ "$dump_status" != 0 ] && [ "${dump_failed:-0}" = 0 ] && dump_failed=1

# pg_regress prints one "test NAME ... ok" (or "... FAILED") line per test.
sql_passed=$(grep -cE '^ *(test )?[[:alnum:]_-]+ +\.\.\. ok' "$CDP_STATE/installcheck.log" || true)
sql_failed=$(grep -cE '\.\.\. FAILED|failed \(ignored\)' "$CDP_STATE/installcheck.log" || true)
[ "$status" != 0 ] && [ "$sql_failed" = 0 ] && sql_failed=1
[ "$status" = 0 ] && status=$dump_status

echo
echo "tests: $((unit_passed + sql_passed + ${dump_passed:-0})) passed, $((sql_failed + ${dump_failed:-0})) failed"
exit "$status"
