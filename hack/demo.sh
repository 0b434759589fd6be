#!/usr/bin/env bash
# What `make demo` runs: a local fleet (a hub and two spokes, no containers) syncs
# examples/fleet-demo from a Git repository, its health is printed, and it stops.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

dir=.dev/demo
flotilla="$root/bin/flotilla"
kubectl="${KUBECTL:-kubectl}"
start_timeout="${DEMO_START_TIMEOUT:-240}" # seconds; the first start on a busy machine is slow
sync_timeout="${DEMO_SYNC_TIMEOUT:-180s}"

if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold='' plain=''; fi
say() { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }
fail() {
  echo "demo failed: $*" >&2
  if [ -s "$dir/dev.log" ]; then
    echo "--- last lines of $dir/dev.log ---" >&2
    tail -n 40 "$dir/dev.log" >&2
  fi
  exit 1
}

[ -x "$flotilla" ] || { echo "building bin/flotilla" >&2; go build -o "$flotilla" ./fleet/cmd/flotilla; }
command -v "$kubectl" >/dev/null || fail "kubectl is not on PATH"
command -v git >/dev/null || fail "git is not on PATH"

work="$(mktemp -d)"
cleanup() {
  rc=$?
  "$flotilla" dev down --dir "$dir" >/dev/null 2>&1 || true
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A demo left running by an interrupted earlier run would hold the folder.
"$flotilla" dev down --dir "$dir" >/dev/null 2>&1 || true
mkdir -p "$dir"
rm -f "$dir/ready"

say "Starting a local fleet: a hub and 2 spokes (log: $dir/dev.log)"
"$flotilla" dev up --clusters 2 --dir "$dir" >"$dir/dev.log" 2>&1 &
dev_pid=$!
for ((i = 0; i < start_timeout; i++)); do
  [ -e "$dir/ready" ] && break
  kill -0 "$dev_pid" 2>/dev/null || fail "flotilla dev up exited before the fleet was ready"
  sleep 1
done
[ -e "$dir/ready" ] || fail "the fleet was not ready within ${start_timeout}s"
hub=(--kubeconfig "$dir/hub.kubeconfig")
echo "ready: $dir/hub.kubeconfig, $dir/clusters/spoke-{1,2}.kubeconfig"

say "Making a Git repository from examples/fleet-demo"
repo="$work/fleet-demo"
cp -R examples/fleet-demo "$repo"
# Fixed identity and dates give the same commit, hence the same revision, every run.
export GIT_AUTHOR_NAME="Flotilla Demo" GIT_AUTHOR_EMAIL="demo@flotilla.dev" \
  GIT_COMMITTER_NAME="Flotilla Demo" GIT_COMMITTER_EMAIL="demo@flotilla.dev" \
  GIT_AUTHOR_DATE="2026-01-01T00:00:00Z" GIT_COMMITTER_DATE="2026-01-01T00:00:00Z"
git -C "$repo" init -q -b main
git -C "$repo" add -A
git -C "$repo" -c commit.gpgsign=false commit -q -m "fleet demo"
echo "file://$repo at $(git -C "$repo" rev-parse HEAD)"

say "Applying a GitRepository and a Kustomization that targets every cluster"
"$kubectl" "${hub[@]}" apply -f - <<EOF
apiVersion: source.flotilla.dev/v1alpha1
kind: GitRepository
metadata:
  name: fleet-demo
  namespace: default
spec:
  url: file://$repo
  ref:
    branch: main
  interval: 1m
---
apiVersion: delivery.flotilla.dev/v1alpha1
kind: Kustomization
metadata:
  name: fleet-demo
  namespace: default
spec:
  sourceRef:
    kind: GitRepository
    name: fleet-demo
  path: ./
  interval: 5m
  prune: true
  placement:
    clusterSelector: {}
EOF

say "Waiting for both spokes to run it"
ks=(-n default kustomizations.delivery.flotilla.dev/fleet-demo)
if ! "$kubectl" "${hub[@]}" wait "${ks[@]}" --for=jsonpath='{.status.clusters.ready}'=2 --timeout="$sync_timeout" ||
  ! "$kubectl" "${hub[@]}" wait "${ks[@]}" --for=condition=Ready --timeout=60s; then
  "$flotilla" "${hub[@]}" status || true
  fail "the Kustomization did not become ready on both spokes"
fi

say "flotilla status"
"$flotilla" "${hub[@]}" status

say "What spoke-1 runs (label app.kubernetes.io/part-of=fleet-demo)"
"$kubectl" --kubeconfig "$dir/clusters/spoke-1.kubeconfig" get namespaces,serviceaccounts,configmaps,services \
  -n demo -l app.kubernetes.io/part-of=fleet-demo

say "Stopping the fleet"
"$flotilla" dev down --dir "$dir"
wait "$dev_pid" || fail "flotilla dev up exited with an error"
echo "Demo done."
