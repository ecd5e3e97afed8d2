#!/usr/bin/env bash
# Builds the real control plane the tests run against (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kwok), cosign, the independent
# verifier of signed evidence bundles, and Vault, the secret store rotation is
# proven against, from the Go module proxy, once, into a
# cache directory outside the clone. Each binary lives in a directory
# keyed by the hash of the tools module that pins it, so a version bump
# rebuilds and an unchanged module is never rebuilt.
#
#   KIR_TEST_CACHE   cache root (default ~/.cache/kir-test)
#
# Prints the directory holding the binaries on its last line.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${KIR_TEST_CACHE:-$HOME/.cache/kir-test}
kube_version=v1.37.2

key() { cat "$here/$1/go.mod" "$here/$1/go.sum" | sha256sum | cut -c1-12; }

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
	(cd "$here/$mod" && go build -trimpath -ldflags "-s -w $ldflags" -o "$tmp" "$pkg")
	mv -f "$tmp" "$dir/$bin"
	echo "built $bin in $((SECONDS - start))s" >&2
}

k8sver="-X k8s.io/component-base/version.gitVersion=$kube_version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37"

# Downloads are network-bound and builds CPU-bound: on a cold cache, fetch
# the modules of every binary still to build in the background while the
# first ones compile (go's module cache takes concurrent fetches).
mods="etcd kwok kube"
[ "${1:-}" = --control-plane ] || mods="$mods cosign vault kumo"
for mod in $mods; do
	if ! ls "$cache/$mod-$(key "$mod")"/* >/dev/null 2>&1; then
		(cd "$here/$mod" && go mod download >/dev/null 2>&1 || true) &
	fi
done

build etcd etcd go.etcd.io/etcd/server/v3
build kwok kwok sigs.k8s.io/kwok/cmd/kwok
build kube kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "$k8sver"
build kube kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager "$k8sver"
build kube kube-scheduler k8s.io/kubernetes/cmd/kube-scheduler "$k8sver"
pairs="etcd:etcd kwok:kwok kube:kube-apiserver kube:kube-controller-manager kube:kube-scheduler"
# --control-plane: what make demo needs, without the test-only cosign.
if [ "${1:-}" != --control-plane ]; then
	build cosign cosign github.com/sigstore/cosign/v2/cmd/cosign
	# Vault v1.21.0 exactly (v1.21.4 does not build as a dependency): ~35
	# CPU-minutes and 5.6 GB at its peak, once.
	build vault vault github.com/hashicorp/vault
	pairs="$pairs cosign:cosign vault:vault"
	# kumo, a second Secrets Manager emulator that internal/smserver's tests
	# cross-check against. Its module pins amplify v1.39.0 and appmesh
	# v1.36.0 above the versions kumo asks for (v1.38.16, v1.35.14), which
	# the checksum database has no entry for, so go refuses them.
	build kumo kumo github.com/sivchari/kumo/cmd/kumo
	pairs="$pairs kumo:kumo"
fi

wait
bin="$cache/bin"
mkdir -p "$bin"
for pair in $pairs; do
	mod=${pair%%:*} name=${pair#*:}
	ln -sf "$cache/$mod-$(key "$mod")/$name" "$bin/$name"
done
echo "$bin"
