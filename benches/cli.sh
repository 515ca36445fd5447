#!/usr/bin/env bash
# Benchmarks of the foundation (numbers for the issue notes; no assertions):
#   1. `potato check` on the example hosts (target < 100 ms)
#   2. `potato gen` for 200 synthetic hosts (target < 2 s)
# Usage: benches/cli.sh [RUNS]   (default 20 runs each; prints min/median/max)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
cargo build --release -q
bin=$PWD/target/release/potato

stats() { sort -n | awk '{a[NR]=$1} END {printf "min %.1f ms  median %.1f ms  max %.1f ms  (%d runs)\n", a[1], a[int((NR+1)/2)], a[NR], NR}'; }
time_ms() { local s e; s=$(date +%s%N); "$@" >/dev/null; e=$(date +%s%N); echo "scale=3; ($e-$s)/1000000" | bc; }

echo "potato check, 4 example hosts:"
for _ in $(seq "$runs"); do time_ms "$bin" check --repo .; done | stats

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r flake.nix hosts modules secrets "$work"/
# 200 synthetic spokes of pve-gateway, derived from pve-apps: own address, vmid, tunnel IP.
# Each reuses pve-apps's host key and secrets (encrypted to that key).
apps_key=$(sed -n 's/^pve-apps = //p' secrets/recipients.toml)
for i in $(seq 1 200); do
  echo "synth-$i = $apps_key" >> "$work/secrets/recipients.toml"
  mkdir -p "$work/secrets/synth-$i" && cp secrets/pve-apps/* "$work/secrets/synth-$i/"
  sed -e "s/192.168.100.21/192.168.100.$((i + 29))/" -e "s/vmid = 111/vmid = $((1000 + i))/" \
      -e "s#10.99.0.12/24#10.99.0.$((i + 20))/24#" hosts/pve-apps.toml > "$work/hosts/synth-$i.toml"
done
echo "potato gen, 204 hosts (200 synthetic), from scratch each run:"
for _ in $(seq "$runs"); do rm -rf "$work/modules/generated"; time_ms "$bin" gen --repo "$work"; done | stats
echo "potato check, 204 hosts:"
for _ in $(seq "$runs"); do time_ms "$bin" check --repo "$work"; done | stats
echo "peak RSS of potato gen, 204 hosts: $( { /usr/bin/time -f %M "$bin" gen --repo "$work" >/dev/null; } 2>&1 ) KiB"
echo "potato audit n250 (generated files):"
for _ in $(seq "$runs"); do time_ms "$bin" audit n250 --repo .; done | stats
