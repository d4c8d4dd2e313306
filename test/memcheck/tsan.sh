#!/usr/bin/env bash
# Data-race hunt for the worker threads (manual, ~2 minutes): builds the core unit tests with ThreadSanitizer
# in a separate build directory and runs the tests that share data between threads — the phone worker, the
# WorkerThread itself, and a graph resolved on a worker while its strings are read (what a full rebuild does
# while it stores the links). Fails on any ThreadSanitizer report.
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

cdp_install_packages
build="$CDP_STATE/tsan"
cmake -S "$CDP_ROOT" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS=-fsanitize=thread \
  -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread >/dev/null
cmake --build "$build" -j"$(nproc)" >/dev/null
log "core unit tests with threads, under ThreadSanitizer"
TSAN_OPTIONS="halt_on_error=1 exitcode=66" "$build/core_tests" \
  --gtest_filter='PhoneWorker*:WorkerThread*:IdentityGraph.ResolvesOnAWorker*'
