#!/bin/sh
# potato's on-host agent. Operations that change the host (deploy, rollback)
# install it at $STATE/agent.sh (which creates $STATE) and run it as
# `sh $STATE/agent.sh COMMAND ARGS...`; read-only ones (state, generations,
# has-zstd) send it on stdin as `sh -s -- COMMAND` and leave nothing behind, so
# those commands must not write. POSIX sh plus nix-env/nix-store and flock.
# Every argument potato passes is validated (store paths, numbers, hex tokens) or
# single-quoted. State lives in /nix/var/potato so each host (and each testbed
# host, which has its own /nix) keeps its own. The paths are also in
# src/host/paths.rs (a unit test keeps them equal).
set -u
STATE=/nix/var/potato
PROFILE=/nix/var/nix/profiles/system

current_generation() {
  nix-env -p "$PROFILE" --list-generations 2>/dev/null | awk '/\(current\)/ { print $1 }'
}

# Run a command detached from the SSH session, so a dropped connection (sshd
# restarting, a firewall change) does not kill it: a transient systemd unit on
# NixOS, a new session elsewhere.
detach() {
  name=$1; shift
  if [ -d /run/systemd/system ] && command -v systemd-run >/dev/null 2>&1; then
    systemd-run --quiet --collect --unit="$name" --property=KillMode=process "$@" >/dev/null
  else
    setsid "$@" </dev/null >/dev/null 2>&1 &
  fi
}

cmd=${1:-}; shift || true
case "$cmd" in
lock)
  # Held for as long as this command's stdin stays open: when the deployer
  # finishes or dies, the SSH channel closes, cat ends, and flock is released.
  holder=$1
  exec 9>>"$STATE/deploy.lock"
  if ! flock -n 9; then
    echo "BUSY $(cat "$STATE/deploy.lock.info" 2>/dev/null)"
    exit 75
  fi
  if [ -f "$STATE/watchdog.pid" ] && kill -0 "$(cat "$STATE/watchdog.pid")" 2>/dev/null; then
    echo "WATCHDOG $(cat "$STATE/watchdog.info" 2>/dev/null)"
    exit 76
  fi
  printf '%s since %s\n' "$holder" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" > "$STATE/deploy.lock.info"
  echo OK
  cat >/dev/null
  ;;
state)
  # Read-only. readlink -e prints nothing for a missing link (a fresh host).
  # The current generation is the one the profile link names (system-N-link),
  # read without nix-env, which may create files.
  echo "current $(readlink -e /run/current-system 2>/dev/null)"
  echo "profile $(readlink -e "$PROFILE" 2>/dev/null)"
  link=$(readlink "$PROFILE" 2>/dev/null)
  echo "generation $(printf '%s' "${link##*/}" | sed -n 's/^system-\([0-9][0-9]*\)-link$/\1/p')"
  ;;
missing)
  # Store paths on stdin, one per line; prints those not valid here (in the
  # store under $POTATO_STORE_ROOT when set: a machine being installed).
  xargs -r nix-store ${POTATO_STORE_ROOT:+--store "$POTATO_STORE_ROOT"} --check-validity --print-invalid
  ;;
substitute)
  # Store paths on stdin (missing here), one per line: Nix fetches what it can
  # from this host's own substituters (signatures checked against its
  # trusted-public-keys; --keep-going: a path no substituter has fails alone),
  # then the paths still not valid are printed, as `missing` does. One round
  # trip. A "not in this cache" answer Nix remembered from an earlier query is
  # not trusted (negative TTL 0): the fleet cache may have been filled since.
  # The substituters are asked first (a dry run: one narinfo per path), for
  # at most 60 s: Nix bounds each request (connect-timeout,
  # stalled-download-timeout) but retries it (download-attempts, 5) and waits
  # out a cache that does not answer one request after another. Measured with
  # Nix 2.8: 32 paths against a cache whose packets are dropped took 127 s at
  # connect-timeout = 1, so ~10 minutes at the fleet cache's 5 and hours for a
  # system's closure. When the questions take longer, nothing is fetched
  # (potato pushes it all); any other outcome goes on to the fetch, whose
  # downloads may take as long as they need.
  list=$(cat)
  printf '%s\n' "$list" | timeout 60 xargs -r nix-store ${POTATO_STORE_ROOT:+--store "$POTATO_STORE_ROOT"} \
    --option narinfo-cache-negative-ttl 0 --realise --dry-run >/dev/null 2>&1
  if [ $? -ne 124 ]; then
    printf '%s\n' "$list" | xargs -r nix-store ${POTATO_STORE_ROOT:+--store "$POTATO_STORE_ROOT"} \
      --option narinfo-cache-negative-ttl 0 --realise --keep-going >/dev/null 2>&1 || true
  else
    # Said on stderr with NOTE: potato shows it as a warning.
    echo "NOTE the host's substituters did not answer within 60 s; nothing was fetched from them (is a cache down or unreachable?)" >&2
  fi
  printf '%s\n' "$list" | xargs -r nix-store ${POTATO_STORE_ROOT:+--store "$POTATO_STORE_ROOT"} --check-validity --print-invalid
  ;;
serve-write)
  # serve-write [zstd]: nix-store's serve protocol on stdin (zstd-compressed
  # when asked); potato sends cmdAddToStoreNar per path.
  if [ "${1:-}" = zstd ]; then
    zstd -dcq | nix-store ${POTATO_STORE_ROOT:+--store "$POTATO_STORE_ROOT"} --serve --write
  else
    nix-store ${POTATO_STORE_ROOT:+--store "$POTATO_STORE_ROOT"} --serve --write
  fi
  ;;
cache-publish)
  # cache-publish DIR KEY PUB: store paths on stdin, one per line, copied from
  # this host's store into the static binary cache DIR with Nix's own file://
  # binary cache store (it writes nix-cache-info, the NARs zstd-compressed, and
  # one narinfo per path signed with KEY, a secret key in Nix's format; paths
  # already in the cache are skipped). Settings: NixOS/nix
  # src/libstore/binary-cache-store.hh (`compression`, `secret-key`).
  # A narinfo of these paths that PUB (KEY's public key) does not verify
  # (unsigned, signed by another key, altered) is removed first, so the copy
  # writes it anew: a poisoned or stale cache heals on the next deploy instead
  # of being skipped forever (`nix store verify --no-contents` says "path '…'
  # is untrusted" for each; it only checks paths the cache has).
  # Prints "PUBLISHED N" (narinfos added) and "REPLACED M" (of those, how many
  # replaced an untrusted one), or "NOKEY" when KEY is not there. potato
  # validated DIR and KEY (plain paths) and PUB (a Nix public key).
  dir=$1 key=$2 pub=$3
  if [ ! -r "$key" ]; then echo NOKEY; exit 4; fi
  mkdir -p "$dir" || exit 5
  list=$(cat)
  cached=$(printf '%s\n' "$list" | while read -r p; do
    h=${p#/nix/store/}; h=${h%%-*}
    if [ -n "$h" ] && [ -e "$dir/$h.narinfo" ]; then printf '%s\n' "$p"; fi
  done)
  replaced=0
  for p in $(printf '%s\n' "$cached" | xargs -r nix --extra-experimental-features nix-command store verify \
      --no-contents --store "file://$dir" --trusted-public-keys "$pub" 2>&1 |
      sed -n "s|^path '\(/nix/store/[^']*\)' is untrusted\$|\1|p"); do
    h=${p#/nix/store/}; rm -f "$dir/${h%%-*}.narinfo" && replaced=$((replaced + 1))
  done
  before=$(find "$dir" -maxdepth 1 -name '*.narinfo' | wc -l)
  printf '%s\n' "$list" | xargs -r nix --extra-experimental-features nix-command copy --to "file://$dir?secret-key=$key&compression=zstd" || exit 6
  after=$(find "$dir" -maxdepth 1 -name '*.narinfo' | wc -l)
  echo "PUBLISHED $((after - before))"
  echo "REPLACED $replaced"
  ;;
has-zstd)
  command -v zstd >/dev/null 2>&1 && echo yes || echo no
  ;;
activate)
  # activate TOPLEVEL MODE TOKEN MAGIC CONFIRM_SECS ACTIVATION_SECS
  top=$1 mode=$2 token=$3 magic=$4 confirm=$5 act=$6
  # The modes potato sends (src/host/remote.rs, agent_mode); nothing else runs.
  case "$mode" in
    switch|boot|test|dry-activate) ;;
    *) echo "unknown activation mode: $mode" >&2; exit 2 ;;
  esac
  prev=$(current_generation)
  prev_system=$(readlink -e /run/current-system 2>/dev/null)
  case "$mode" in
    switch|boot) nix-env -p "$PROFILE" --set "$top" || exit 3 ;;
  esac
  new=$(current_generation)
  rm -f "$STATE/result-$token" "$STATE/activate-$token.rc"
  if [ "$magic" = 1 ]; then
    : > "$STATE/canary-$token"
    printf 'deploy %s to generation %s since %s\n' "$token" "$new" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" > "$STATE/watchdog.info"
    detach "potato-watchdog-$token" sh "$STATE/agent.sh" watchdog "$token" "$prev" "$prev_system" "$mode" "$confirm" "$act"
  fi
  detach "potato-activate-$token" sh "$STATE/agent.sh" run-activation "$top" "$mode" "$token" "$magic" "$prev" "$prev_system"
  echo "ARMED prev=$prev new=$new"
  ;;
run-activation)
  top=$1 mode=$2 token=$3 magic=$4 prev=$5 prev_system=$6
  echo $$ > "$STATE/activate-$token.pid"
  "$top/bin/switch-to-configuration" "$mode" > "$STATE/activate-$token.log" 2>&1
  rc=$?
  echo "$rc" > "$STATE/activate-$token.rc.tmp" && mv "$STATE/activate-$token.rc.tmp" "$STATE/activate-$token.rc"
  if [ "$rc" != 0 ] && [ "$magic" != 1 ]; then
    # No watchdog: roll back at once (auto rollback).
    sh "$STATE/agent.sh" restore "$token" "$prev" "$prev_system" "$mode" "activation failed (exit $rc)"
  fi
  ;;
activation-status)
  # activation-status TOKEN [WAIT_SECS]: "running", or "RC AGE": the exit code
  # and how many seconds ago the activation finished (the watchdog's confirm
  # window runs from then). With WAIT_SECS, waits up to that long for it to
  # finish (checked here every 50 ms: one round trip instead of potato's polls).
  rc_file="$STATE/activate-$1.rc"
  case "${2:-0}" in *[!0-9]*|'') exit 2 ;; esac
  i=0
  while [ ! -e "$rc_file" ] && [ "$i" -lt $(( ${2:-0} * 20 )) ]; do sleep 0.05; i=$((i + 1)); done
  if rc=$(cat "$rc_file" 2>/dev/null); then
    echo "$rc $(( $(date +%s) - $(stat -c %Y "$rc_file" 2>/dev/null || date +%s) ))"
  else
    echo running
  fi
  ;;
activation-log)
  tail -n "${2:-40}" "$STATE/activate-$1.log" 2>/dev/null
  ;;
watchdog)
  # watchdog TOKEN PREV_GEN PREV_SYSTEM MODE CONFIRM_SECS ACTIVATION_SECS
  token=$1 prev=$2 prev_system=$3 mode=$4 confirm=$5 act=$6
  echo $$ > "$STATE/watchdog.pid"
  start=$(date +%s)
  done_at=
  reason=
  while :; do
    now=$(date +%s)
    rc_file="$STATE/activate-$token.rc"
    if [ -z "$done_at" ] && [ -e "$rc_file" ]; then
      done_at=$now
    fi
    if [ -s "$STATE/abort-$token" ]; then
      reason=$(cat "$STATE/abort-$token")
    elif [ ! -e "$STATE/canary-$token" ] && [ -n "$done_at" ]; then
      # A confirmation counts only for an activation that finished well.
      if [ "$(cat "$rc_file")" = 0 ]; then
        echo confirmed > "$STATE/result-$token"
        break
      fi
      reason="activation failed (exit $(cat "$rc_file"))"
    elif [ -z "$done_at" ] && [ $((now - start)) -ge "$act" ]; then
      reason="activation did not finish within ${act}s"
    elif [ -n "$done_at" ] && [ $((now - done_at)) -ge "$confirm" ]; then
      reason="no confirmation over a new SSH connection within ${confirm}s"
    fi
    if [ -n "$reason" ]; then
      sh "$STATE/agent.sh" restore "$token" "$prev" "$prev_system" "$mode" "$reason"
      break
    fi
    sleep 0.2
  done
  rm -f "$STATE/canary-$token" "$STATE/abort-$token" "$STATE/watchdog.pid"
  ;;
restore)
  # restore TOKEN PREV_GEN PREV_SYSTEM MODE REASON: back to the generation that
  # was current when this deploy started (recorded then, never "previous now").
  token=$1 prev=$2 prev_system=$3 mode=$4 reason=$5
  # Stop an activation that is still running (hung); a finished one has its rc.
  if [ -f "$STATE/activate-$token.pid" ] && [ ! -e "$STATE/activate-$token.rc" ]; then
    pid=$(cat "$STATE/activate-$token.pid")
    kill -TERM -"$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
  fi
  case "$mode" in
    switch|boot)
      if [ -n "$prev" ]; then
        nix-env -p "$PROFILE" --switch-generation "$prev" >/dev/null 2>&1
        "$PROFILE/bin/switch-to-configuration" "$mode" > "$STATE/restore-$token.log" 2>&1
      fi ;;
    test)
      [ -n "$prev_system" ] && "$prev_system/bin/switch-to-configuration" test > "$STATE/restore-$token.log" 2>&1 ;;
  esac
  if [ -n "$prev" ] || [ "$mode" = test ]; then
    echo "rolled-back $reason" > "$STATE/result-$token"
  else
    echo "rolled-back $reason (there was no earlier generation to return to)" > "$STATE/result-$token"
  fi
  ;;
abort)
  # abort TOKEN REASON: tell the watchdog to roll back now.
  printf '%s\n' "$2" > "$STATE/abort-$1"
  ;;
confirm)
  rm -f "$STATE/canary-$1"
  ;;
result)
  # result TOKEN WAIT_SECS: the watchdog's verdict, waiting up to WAIT_SECS.
  i=0
  while [ ! -s "$STATE/result-$1" ] && [ "$i" -lt $(( ${2:-0} * 5 )) ]; do sleep 0.2; i=$((i + 1)); done
  cat "$STATE/result-$1" 2>/dev/null || echo pending
  ;;
health)
  # health KIND LIMIT_SECS WHAT [ENGINE]: one attempt of a deploy health check,
  # bounded by LIMIT_SECS. Exit 0 when it passes; otherwise exit 1 and one line
  # saying what the host saw. WHAT was validated by potato (a unit name that
  # cannot start with '-', host:port, an http(s) URL, a container it runs).
  kind=$1 limit=$2 what=$3
  case "$kind" in
    unit)
      state=$(timeout "$limit" systemctl is-active -- "$what" 2>&1) && exit 0
      echo "unit $what is not active ($(printf '%s' "${state:-no answer}" | tr '\n' ' ' | sed 's/ *$//'))"
      exit 1 ;;
    tcp)
      host=${what%:*} port=${what##*:}
      host=${host#[}; host=${host%]}
      err=$(timeout "$limit" bash -c 'exec 3<>"/dev/tcp/$1/$2"' potato-health "$host" "$port" 2>&1) && exit 0
      err=$(printf '%s' "$err" | tail -n 1 | sed 's/^.*: //')
      echo "nothing accepts TCP connections on $what (${err:-timed out after ${limit}s})"
      exit 1 ;;
    http)
      # An optional 4th argument NAME:PORT:127.0.0.1 (curl --resolve) sends a
      # URL naming this host to its own listener, whatever DNS says.
      err=$(curl -fsS -m "$limit" ${4:+--resolve "$4"} -o /dev/null "$what" 2>&1) && exit 0
      echo "$what does not answer with success (${err:-no answer})"
      exit 1 ;;
    container)
      # Healthy, or running when the container has no health check. A container
      # still "starting" gets its own health check run now (podman's timer
      # would run it only after its interval).
      engine=${4:-podman}
      fmt='{{.State.Status}} {{if .Config.Healthcheck}}{{.State.Health.Status}}{{else}}none{{end}}'
      if ! st=$(timeout "$limit" "$engine" inspect --type container --format "$fmt" -- "$what" 2>&1); then
        echo "container $what: $(printf '%s' "$st" | tail -n 1 | sed 's/^Error: //; s/^inspecting object: //')"
        exit 1
      fi
      status=${st%% *} health=${st#* }
      if [ "$status" != running ]; then
        echo "container $what is $status"
        exit 1
      fi
      case "$health" in none|healthy) exit 0 ;; esac
      if [ "$engine" = podman ] && timeout "$limit" podman healthcheck run -- "$what" >/dev/null 2>&1; then
        exit 0
      fi
      health=$("$engine" inspect --type container --format '{{.State.Health.Status}}' -- "$what" 2>/dev/null)
      last=$("$engine" inspect --type container --format '{{range .State.Health.Log}}{{.Output}}{{"\n"}}{{end}}' -- "$what" 2>/dev/null | sed '/^$/d' | tail -n 1)
      echo "container $what is running, health ${health:-unknown}${last:+ (its check said: $last)}"
      exit 1 ;;
    *) exit 2 ;;
  esac
  ;;
generations)
  # One line per generation: NUMBER DATE TIME current|- STORE_PATH
  nix-env -p "$PROFILE" --list-generations | while read -r n d t cur; do
    c=-; [ -n "$cur" ] && c=current
    printf '%s %s %s %s %s\n' "$n" "$d" "$t" "$c" "$(readlink -e "$PROFILE-$n-link")"
  done
  ;;
switch-generation)
  # switch-generation N: make generation N current and activate it.
  nix-env -p "$PROFILE" --switch-generation "$1" || exit 3
  "$PROFILE/bin/switch-to-configuration" switch
  ;;
*)
  echo "potato agent: unknown command '$cmd'" >&2
  exit 2
  ;;
esac
