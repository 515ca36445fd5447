#!/usr/bin/env bash
# Fleet push benchmarks on the testbed (issue 17): 1, 3 and 6 hosts, pushed
# directly and through the fleet cache; bytes leaving the deployer, deployer CPU
# seconds per host, wall time. Needs root and the packages tests/run installs.
# Usage: benches/fleet.sh [PATHS] [BYTES_PER_PATH] [RUNS] [RATES]
#   (default 20 1000000 3 100mbit; RATES is a comma list of tc rates, `none` = unlimited)
set -euo pipefail
cd "$(dirname "$0")/.."
export NIX_CONF_DIR=$PWD/tests/nix
export POTATO_BENCH_PATHS=${1:-20} POTATO_BENCH_BYTES=${2:-1000000} POTATO_BENCH_RUNS=${3:-3} POTATO_BENCH_RATE=${4:-100mbit}
cargo test --release -q --test bench_fleet -- --ignored fleet_benchmarks --exact --nocapture --test-threads 1 2>&1 | grep -vE '^(running|test |$)'
