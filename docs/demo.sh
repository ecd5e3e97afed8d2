#!/usr/bin/env bash
# make demo: a local control plane (real etcd + kube-apiserver +
# controller-manager + scheduler, kwok as the kubelet), a demo app with three
# replicas, one of them contained with kir, what changed, and the release.
set -euo pipefail
cd "$(dirname "$0")/.."
kir=$PWD/bin/kir
work=$(mktemp -d)
export KUBECONFIG=$work/kubeconfig
export KIR_STATE_DIR=$work/state # the demo's run journals go with it

cleanup() {
	[ -n "${cluster_pid:-}" ] && kill "$cluster_pid" 2>/dev/null && wait "$cluster_pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

say "Starting a local control plane"
go build -o "$work/testcluster" ./internal/kubetest/cmd/testcluster
"$work/testcluster" --kubeconfig-out "$KUBECONFIG" --nodes 1 >"$work/cluster.out" 2>"$work/cluster.err" &
cluster_pid=$!
for _ in $(seq 1 600); do
	grep -q ready "$work/cluster.out" 2>/dev/null && break
	kill -0 "$cluster_pid" 2>/dev/null || { cat "$work/cluster.err"; exit 1; }
	sleep 0.1
done
grep -q ready "$work/cluster.out" || { echo "control plane did not start"; cat "$work/cluster.err"; exit 1; }
echo "ready: etcd, kube-apiserver, controller-manager, scheduler and kwok on 127.0.0.1"

say "A demo app: namespace shop, Deployment web with three replicas, a Service"
go run ./internal/kubetest/cmd/demoapp --namespace shop --replicas 3
pods=$(go run ./internal/kubetest/cmd/demoapp --namespace shop --list)
echo "$pods"
target=$(echo "$pods" | head -1 | cut -d' ' -f1)

say "Can kir act here?"
run "$kir" doctor

say "Contain one replica: $target (flags after the name, as with kubectl)"
run "$kir" contain pod "$target" -n shop --incident demo-001

say "What changed"
go run ./internal/kubetest/cmd/demoapp --namespace shop --show

say "Contain it again: nothing changes"
run "$kir" contain pod "$target" -n shop --incident demo-001

say "Release it: exactly what kir did is undone"
run "$kir" release pod "$target" -n shop

say "After release"
go run ./internal/kubetest/cmd/demoapp --namespace shop --show

say "Every response was a playbook run, recorded in a journal"
run "$kir" runs list
