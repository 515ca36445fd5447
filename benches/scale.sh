#!/usr/bin/env bash
# Scale benchmarks of `potato check` (numbers for the issue notes; no assertions):
#   1. a WireGuard hub with 1,000, 2,000 and 5,000 spokes that name it
#      (the hub derives its peers; target: 5,000 spokes in < 2 s)
#   2. one host with a rule listing 65,000 ports one by one, and with 8 such rules
#   3. one host with 8 rules listing 32,768 odd ports each (nothing to coalesce)
# Usage: benches/scale.sh [RUNS] [BIN]   (default 3 runs each, prints min/median/max;
#        BIN defaults to a fresh release build, e.g. pass an older build to compare)
# Each run is capped with `timeout ${POTATO_BENCH_TIMEOUT:-120}`; a capped run prints "> N s".
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
bin=${2:-}
if [[ -z $bin ]]; then
  cargo build --release -q
  bin=$PWD/target/release/potato
fi
cap=${POTATO_BENCH_TIMEOUT:-120}

stats() { sort -n | awk '{a[NR]=$1} END {printf "min %.1f ms  median %.1f ms  max %.1f ms  (%d runs)\n", a[1], a[int((NR+1)/2)], a[NR], NR}'; }
# One timed `check`; fails loudly if check does not pass, prints "capped" if it ran out of time.
time_check() {
  local s e rc=0
  s=$(date +%s%N)
  timeout "$cap" "$bin" check --quiet --repo "$1" >/dev/null || rc=$?
  e=$(date +%s%N)
  if [[ $rc == 124 ]]; then echo capped; return; fi
  if [[ $rc != 0 ]]; then echo "potato check failed on $1 (exit $rc)" >&2; exit 1; fi
  echo "scale=3; ($e-$s)/1000000" | bc
}
bench() {
  local label=$1 dir=$2 out
  out=$(for _ in $(seq "$runs"); do time_check "$dir"; done)
  if grep -q capped <<<"$out"; then echo "$label: > $cap s"; else echo "$label: $(stats <<<"$out")"; fi
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# A repository with the example's flake, modules and admin keys but no hosts.
empty_repo() {
  local d=$1
  mkdir -p "$d/hosts" "$d/secrets"
  cp -r flake.nix modules "$d"/
  rm -rf "$d/modules/generated"
  sed '/^\[hosts\]/q' secrets/recipients.toml > "$d/secrets/recipients.toml"
}
# add_host DIR NAME: registers NAME with pve-apps's host key and gives it pve-apps's
# wg0 secret (encrypted to that key).
add_host() {
  echo "$2 = $apps_key" >> "$1/secrets/recipients.toml"
  mkdir -p "$1/secrets/$2"
  cp secrets/pve-apps/wg0.age secrets/pve-apps/wg0.recipients "$1/secrets/$2/"
}
# host_file NAME ADDRESS RULES WG: a small n250 host; WG is its [wireguard.wg0] body.
host_file() {
  cat <<EOF
system = "x86_64-linux"
hardware = "n250"
memory = "2GiB"

[deploy]
target = "root@$2"

[zones]
lan = ["198.18.0.0/15"]
wg = ["10.100.0.0/16"]

[firewall]
rules = [$3]

[ssh]
authorized_keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMKXN34D/ABvhBlQFj51Wy7ZJqBlCRibyccvWok77/Qp admin@laptop"]

[wireguard.wg0]
private_key = "secret:wg0"
$4
EOF
}
apps_key=$(sed -n 's/^pve-apps = //p' secrets/recipients.toml)
ssh_rules='"limit 22/tcp from lan", "allow 22/tcp from wg"'

# fleet DIR SPOKES: hub + SPOKES spokes in 10.100.0.0/16, each with its own key.
fleet() {
  local d=$1 n=$2 i
  empty_repo "$d"
  add_host "$d" hub
  host_file hub 198.18.0.1 "$ssh_rules" 'address = "10.100.0.1/16"
listen_port = 51820
endpoint = "hub.example.net:51820"
public_key = "0Gk+66mB1qhscX7QPp3ZItQ+xQLBBUVx6rs7xLyFoW4="' > "$d/hosts/hub.toml"
  for i in $(seq 1 "$n"); do
    add_host "$d" "spoke-$i"
    host_file "spoke-$i" "198.18.$((i / 250)).$((i % 250 + 2))" "$ssh_rules" \
      "address = \"10.100.$((i / 250)).$((i % 250 + 2))/16\"
public_key = \"$(printf 'spoke%037dA=' "$i")\"
peers = [\"hub\"]" > "$d/hosts/spoke-$i.toml"
  done
}

# ports_repo DIR RULES STEP: one host whose RULES rules each list the ports
# 1, 1+STEP, ... up to 65,000 (STEP 1: 65,000 ports; STEP 2: 32,500 odd ports),
# one by one, each rule from its own source so none shadows another.
ports_repo() {
  local d=$1 n=$2 step=$3 list rules="" r
  empty_repo "$d"
  add_host "$d" ports
  list=$(seq -s, 1 "$step" 65000)
  for r in $(seq 1 "$n"); do rules+="\"allow $list/tcp from 10.$r.0.0/16\", "; done
  host_file ports 198.18.0.1 "$rules$ssh_rules" 'address = "10.100.0.1/16"
public_key = "0Gk+66mB1qhscX7QPp3ZItQ+xQLBBUVx6rs7xLyFoW4="' > "$d/hosts/ports.toml"
}

for n in 1000 2000 5000; do
  fleet "$work/wg-$n" "$n"
  bench "potato check, hub + $n spokes" "$work/wg-$n"
done
ports_repo "$work/ports-1" 1 1
bench "potato check, 1 rule listing 65,000 ports" "$work/ports-1"
ports_repo "$work/ports-8" 8 1
bench "potato check, 8 rules listing 65,000 ports each" "$work/ports-8"
ports_repo "$work/odd-8" 8 2
bench "potato check, 8 rules listing 32,500 odd ports each" "$work/odd-8"
