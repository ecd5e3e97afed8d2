#!/usr/bin/env bash
# make demo: a local control plane (real etcd + kube-apiserver +
# controller-manager + scheduler, kwok as the kubelet) and an image registry,
# a demo app with three replicas under attack, one of them contained with kir
# while it collects signed evidence, the bundle verified, what changed, and
# the release.
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
# in_bundle runs a shell command line in the evidence bundle.
in_bundle() { printf '$ cd %s && %s\n' "$work/evidence" "$1"; (cd "$work/evidence" && eval "$1"); }

say "Starting a local control plane and an image registry"
go build -o "$work/testcluster" ./internal/kubetest/cmd/testcluster
"$work/testcluster" --kubeconfig-out "$KUBECONFIG" --nodes 1 >"$work/cluster.out" 2>"$work/cluster.err" &
cluster_pid=$!
for _ in $(seq 1 600); do
	grep -q ready "$work/cluster.out" 2>/dev/null && break
	kill -0 "$cluster_pid" 2>/dev/null || { cat "$work/cluster.err"; exit 1; }
	sleep 0.1
done
grep -q ready "$work/cluster.out" || { echo "control plane did not start"; cat "$work/cluster.err"; exit 1; }
registry=$(sed -n 's/^registry //p' "$work/cluster.out")
echo "ready: etcd, kube-apiserver, controller-manager, scheduler and kwok on 127.0.0.1, a registry at $registry"

say "A demo app: namespace shop, Deployment web with three replicas, a Service; its image pushed to $registry"
go run ./internal/kubetest/cmd/demoapp --namespace shop --replicas 3 --registry "$registry"
pods=$(go run ./internal/kubetest/cmd/demoapp --namespace shop --list)
echo "$pods"
target=$(echo "$pods" | head -1 | cut -d' ' -f1)

say "Can kir act here?"
run "$kir" doctor

say "A key pair to sign evidence with (in real life the private key stays with the responders)"
run "$kir" evidence keygen --out "$work/keys"

say "Contain one replica: $target (flags after the name, as with kubectl); evidence is collected and signed"
run "$kir" contain pod "$target" -n shop --incident demo-001 --key "$work/keys/kir.key" --out "$work/evidence"

say "The evidence bundle"
run "$kir" evidence show "$work/evidence"
in_bundle 'find . -maxdepth 4 | sort'

say "Its logs, the current one and the one before the container's last restart, hold the attack"
in_bundle "grep -e 203.0.113.66 -e panic: pods/shop/$target/logs/web.previous.log pods/shop/$target/logs/web.log"

say "Verify it: every file's hash, the custody chain, the signature"
run "$kir" evidence verify "$work/evidence" --key "$work/keys/kir.pub"

say "What changed"
go run ./internal/kubetest/cmd/demoapp --namespace shop --show

say "Contain it again: nothing more changes in the cluster (each run still collects its own evidence)"
run "$kir" contain pod "$target" -n shop --incident demo-001 --key "$work/keys/kir.key"

say "Release it: exactly what kir did is undone, and recorded in the bundle's custody log"
run "$kir" release pod "$target" -n shop --evidence "$work/evidence" --key "$work/keys/kir.key"

say "After release"
go run ./internal/kubetest/cmd/demoapp --namespace shop --show

say "The bundle still verifies, with the release appended to its custody log"
run "$kir" evidence verify "$work/evidence" --key "$work/keys/kir.pub"

say "Every response was a playbook run, recorded in a journal"
run "$kir" runs list
