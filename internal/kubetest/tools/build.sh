#!/usr/bin/env bash
# Builds the real control plane the tests run against (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kwok), cosign, the independent
# verifier of signed evidence bundles, and Vault, the secret store rotation is
# proven against, from the Go module proxy, once, into a
# cache directory outside the clone. Each binary lives in a directory
# keyed by the hash of the tools module that pins it, so a version bump
# rebuilds and an unchanged module is never rebuilt.
#
#   build.sh                  everything make test needs
#   build.sh --control-plane  only the control plane (make demo)
#   build.sh --lint           only staticcheck (make lint)
#
#   KIR_TEST_CACHE   cache root (default ~/.cache/kir-test)
#
# Prints the directory holding the binaries on its last line.
set -euo pipefail

mode=${1:-}
case $mode in
"" | --control-plane | --lint) ;;
*)
	echo "usage: $0 [--control-plane | --lint]" >&2
	exit 2
	;;
esac
here=$(cd "$(dirname "$0")" && pwd)
cache=${KIR_TEST_CACHE:-$HOME/.cache/kir-test}
kube_version=v1.37.2

key() { cat "$here/$1/go.mod" "$here/$1/go.sum" | sha256sum | cut -c1-12; }

# Without DWARF: -ldflags -w drops it from the binary anyway, so the
# compiler need not make it.
gcflags="all=-dwarf=false"

# build MODULE_DIR BINARY PACKAGE [LDFLAGS]
build() {
	local mod=$1 bin=$2 pkg=$3 ldflags=${4:-}
	local dir="$cache/$mod-$(key "$mod")"
	if [ -x "$dir/$bin" ]; then
		return 0
	fi
	mkdir -p "$dir"
	echo "building $bin ($pkg) into $dir" >&2
	local start=$SECONDS
	# A temporary name of this build's own: two builds at once (make demo
	# beside make test) each rename a whole binary into place.
	local tmp
	tmp=$(mktemp "$dir/.$bin.XXXXXX")
	(cd "$here/$mod" && go build -trimpath -gcflags "$gcflags" -ldflags "-s -w $ldflags" -o "$tmp" "$pkg")
	mv -f "$tmp" "$dir/$bin"
	echo "built $bin in $((SECONDS - start))s" >&2
}

k8sver="-X k8s.io/component-base/version.gitVersion=$kube_version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37"

# Downloads are network-bound and builds CPU-bound: on a cold cache, fetch
# the modules of every binary still to build in the background while the
# first ones compile (go's module cache takes concurrent fetches).
case $mode in
"") mods="etcd kwok kube kubelet cosign vault kumo kuberouter" ;;
--control-plane) mods="etcd kwok kube" ;;
--lint) mods="staticcheck" ;;
esac
for mod in $mods; do
	if ! ls "$cache/$mod-$(key "$mod")"/* >/dev/null 2>&1; then
		(cd "$here/$mod" && go mod download >/dev/null 2>&1 || true) &
	fi
done

# Two chains at once: one build alone leaves a core idle while it links or
# loads packages; two keep both busy. Cold, on 2 cores, everything is built
# in 44 minutes (.ci/run: 60 minutes in all, apt and tests included).
control_plane() {
	build etcd etcd go.etcd.io/etcd/server/v3
	build kwok kwok sigs.k8s.io/kwok/cmd/kwok
	build kube kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "$k8sver"
	build kube kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager "$k8sver"
	build kube kube-scheduler k8s.io/kubernetes/cmd/kube-scheduler "$k8sver"
}
# The real node (internal/kubetest/node.go): kubelet in a module of its
# own, so that its few extra requirements leave the control plane's cache
# key alone; it shares the control plane's packages in go's build cache.
node() {
	build kubelet kubelet k8s.io/kubernetes/cmd/kubelet "$k8sver"
	# The pod sandbox's one process: Kubernetes' own pause.c, from the
	# kubernetes module the kubelet is built from, linked static so that
	# the image needs nothing else.
	local dir="$cache/kubelet-$(key kubelet)"
	if [ ! -x "$dir/pause" ]; then
		local src
		src="$(cd "$here/kubelet" && go env GOMODCACHE)/k8s.io/kubernetes@$kube_version/build/pause/linux/pause.c"
		local tmp
		tmp=$(mktemp "$dir/.pause.XXXXXX")
		gcc -Os -static -DVERSION="$kube_version" -o "$tmp" "$src"
		mv -f "$tmp" "$dir/pause"
	fi
}
# The servers only tests talk to, each for a few calls, are built without
# optimisation (-N -l): it cuts their compile time, and nothing times them.
test_servers() {
	local gcflags="all=-N -l -dwarf=false"
	build cosign cosign github.com/sigstore/cosign/v2/cmd/cosign
	# Vault v1.21.0 exactly (v1.21.4 does not build as a dependency): ~35
	# CPU-minutes optimised, 24 minutes of a shared machine without, once.
	build vault vault github.com/hashicorp/vault
	# kumo, a second Secrets Manager emulator that internal/smserver's tests
	# cross-check against. Its module pins amplify v1.39.0 and appmesh
	# v1.36.0 above the versions kumo asks for (v1.38.16, v1.35.14), which
	# the checksum database has no entry for, so go refuses them.
	build kumo kumo github.com/sivchari/kumo/cmd/kumo
	# kube-router v2.1.0, the only version the module proxy serves, run with
	# --run-firewall only: the NetworkPolicy enforcer of the real node.
	# Optimised: it programs the node's packet filter while tests time it.
	gcflags="all=-dwarf=false" build kuberouter kube-router github.com/cloudnativelabs/kube-router/v2/cmd/kube-router
}
# staticcheck rather than golangci-lint: one maintained suite of analyzers
# (bugs, simplifications, style, unused code) from one module requiring
# six, built here in 40 s; golangci-lint v2 requires 223 modules to run
# many linters that overlap vet and staticcheck, which it embeds anyway.
lint_tools() {
	build staticcheck staticcheck honnef.co/go/tools/cmd/staticcheck
}
pids=()
case $mode in
--lint)
	pairs="staticcheck:staticcheck"
	lint_tools &
	pids+=($!)
	;;
*)
	pairs="etcd:etcd kwok:kwok kube:kube-apiserver kube:kube-controller-manager kube:kube-scheduler"
	if [ "$mode" = --control-plane ]; then
		control_plane &
	else
		{ control_plane && node; } &
	fi
	pids+=($!)
	# --control-plane: what make demo needs, without the test-only servers.
	if [ "$mode" != --control-plane ]; then
		test_servers &
		pids+=($!)
		pairs="$pairs kubelet:kubelet kubelet:pause cosign:cosign vault:vault kumo:kumo kuberouter:kube-router"
	fi
	;;
esac
failed=0
for pid in "${pids[@]}"; do
	wait "$pid" || failed=1
done
[ "$failed" -eq 0 ] || exit 1

wait
bin="$cache/bin"
mkdir -p "$bin"
for pair in $pairs; do
	mod=${pair%%:*} name=${pair#*:}
	ln -sf "$cache/$mod-$(key "$mod")/$name" "$bin/$name"
done
echo "$bin"
