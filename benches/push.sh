#!/usr/bin/env bash
# Push benchmarks on the testbed (needs root and the packages tests/run installs).
# Usage: benches/push.sh [PATHS] [BYTES_PER_PATH] [RUNS]   (default 1000 500000 3)
set -euo pipefail
cd "$(dirname "$0")/.."
export POTATO_BENCH_PATHS=${1:-1000} POTATO_BENCH_BYTES=${2:-500000} POTATO_BENCH_RUNS=${3:-3}
cargo test --release -q --test bench_push -- --ignored push_benchmarks --exact --nocapture --test-threads 1 2>&1 | grep -vE '^(running|test |$)'
