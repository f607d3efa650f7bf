#!/usr/bin/env bash
# Starts `skiff up` in the background (if it is not running yet), deploys examples/echo.yaml and
# shows it working. `scripts/demo.sh down` stops the cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-.data}
SKIFF=bin/skiff
PIDFILE=$DATA/skiff-up.pid
LOG=$DATA/skiff-up.log
# skiff up writes the CLI's client config (server and creds) to ~/.config/skiff/config, or
# $SKIFF_CONFIG, unless another cluster's is there; then use the one under $DATA/auth/config.
CONFIG=${SKIFF_CONFIG:-${XDG_CONFIG_HOME:-$HOME/.config}/skiff/config}
mkdir -p "$DATA"
# This script's own commands use this cluster's config whatever is installed.
export SKIFF_CONFIG=$(realpath "$DATA")/auth/config/user.yaml

# A process killed a moment ago may still be a zombie, which kill -0 finds: it is not running.
running() {
  [ -f "$PIDFILE" ] || return 1
  local state
  state=$(ps -o stat= -p "$(cat "$PIDFILE")" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "${state#Z}" = "$state" ]
}

if [ "${1:-}" = purge ]; then
  # Everything the demo made goes: its pods (deleted through the cluster, so the agent stops them
  # and releases their IPs), skiff up, the data dir, and the node's bridge and nftables tables.
  if running; then
    for d in $("$SKIFF" get deployments -A -o name 2>/dev/null); do "$SKIFF" delete "$d" >/dev/null 2>&1 || true; done
    for p in $("$SKIFF" get pods -o name 2>/dev/null); do "$SKIFF" delete "$p" --grace-period 0 >/dev/null 2>&1 || true; done
    deadline=$((SECONDS + 60))
    while [ -n "$("$SKIFF" get pods -A -o name 2>/dev/null)" ] && [ $SECONDS -lt $deadline ]; do sleep 0.5; done
  fi
  "$0" down
  ip link del skiff0 2>/dev/null || true
  nft delete table ip skiff 2>/dev/null || true
  nft delete table ip skiff-podnet 2>/dev/null || true
  # The agent makes its pin directory (/run/skiff/<node>/ns) a shared bind mount of itself, and
  # pods' pinned namespaces are mounts under it: unmount them, deepest first, before removing.
  awk '$5 ~ "^/run/skiff(/|$)" {print $5}' /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  rm -rf /run/skiff
  # The client config skiff up wrote names creds under $DATA: it goes with them.
  if [ -f "$CONFIG" ] && grep -qF "$(realpath "$DATA")/auth/" "$CONFIG"; then rm -f "$CONFIG"; fi
  rm -rf "$DATA"
  echo "purged the demo: pods, bridge skiff0, nftables tables skiff and skiff-podnet, /run/skiff, $DATA"
  exit 0
fi

if [ "${1:-}" = down ]; then
  if running; then
    pid=$(cat "$PIDFILE")
    kill -TERM "$pid"
    for _ in $(seq 1 300); do running || break; sleep 0.1; done
    if running; then echo "skiff up (pid $pid) did not stop within 30s" >&2; exit 1; fi
    echo "stopped skiff up (pid $pid); the log stays in $DATA"
  else
    echo "skiff up is not running"
  fi
  rm -f "$PIDFILE"
  exit 0
fi

mkdir -p "$DATA"
if running; then
  echo "skiff up is already running (pid $(cat "$PIDFILE"))"
else
  flags=()
  if [ -n "${JAEGER:-}" ]; then flags+=(--jaeger); fi
  if [ -n "${METRICS_ADDR:-}" ]; then flags+=(--metrics-addr "$METRICS_ADDR"); fi
  nohup "$SKIFF" up --data-dir "$DATA" "${flags[@]}" >"$LOG" 2>&1 &
  echo $! >"$PIDFILE"
  echo "started skiff up (pid $!), log in $LOG"
fi

# Wait until the control plane answers and a node is Ready.
deadline=$((SECONDS + 60))
until "$SKIFF" get nodes 2>/dev/null | grep -q ' Ready'; do
  if ! running; then echo "skiff up exited; its log:" >&2; tail -30 "$LOG" >&2; exit 1; fi
  if [ $SECONDS -ge $deadline ]; then echo "no Ready node after 60s; see $LOG" >&2; exit 1; fi
  sleep 0.5
done

if [ -n "${JAEGER:-}" ]; then
  # The CLI traces its commands too when told where to send them: the apply below is then the
  # root of one trace through admission, the controllers, the scheduler, the agent and the proxy.
  export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf OTEL_TRACES_EXPORTER=otlp
fi
set -x
"$SKIFF" get nodes -o wide
"$SKIFF" apply -f examples/echo.yaml
"$SKIFF" rollout status deployment echo --timeout 120s
"$SKIFF" get pods -o wide
"$SKIFF" get services
{ set +x; } 2>/dev/null
vip=$("$SKIFF" get service echo -o json | sed -n 's/.*"clusterIP": *"\([0-9.]*\)".*/\1/p' | head -1)
if [ -n "$vip" ] && command -v curl >/dev/null; then
  echo "+ curl the Service's ClusterIP $vip five times:"
  for _ in 1 2 3 4 5; do curl -s --max-time 2 "http://$vip/demo" || echo "(no answer)"; done
fi
if [ -n "${JAEGER:-}" ]; then
  echo "Traces: http://localhost:16686/api/traces?service=skiff&operation=skiff%20apply (the apply as one trace, from Jaeger's query API; its log in $DATA/jaeger/)"
  echo "        skiff events trace deployment/echo prints the same chain from the log alone."
  echo "        To trace your own commands: export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf"
fi
if [ -n "${METRICS_ADDR:-}" ]; then
  echo "Metrics: curl http://$METRICS_ADDR/metrics"
fi
echo
echo "The cluster keeps running in the background. Try: export PATH=\$PWD/bin:\$PATH; skiff events log; make down"
