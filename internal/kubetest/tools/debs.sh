#!/usr/bin/env bash
# Installs the Debian packages the tests run as real peers, when missing:
# make test calls it (through make testdeps), and so does .ci/run. As root,
# or through sudo; apt-get update first, since a fresh machine's package
# lists may be empty or old.
#
# The list below is the one place to add a package: its name, and the
# command (looked up on PATH) or absolute file the tests use from it, as
# the tests look for it; present means installed.
set -euo pipefail

debs=(
	# headless Chromium renders the evidence report (evidence/report_test.go)
	"chromium chromium"
	# Distribution, the out-of-process OCI registry (internal/kubetest/registry.go)
	"docker-registry /usr/bin/docker-registry"
	# the real node (internal/kubetest/node.go): containerd and runc run
	# its pods, the CNI bridge and host-local plugins wire them, kube-router
	# (built from the module proxy) enforces NetworkPolicy through
	# iptables and ipset, conntrack shows and cuts flows, busybox-static
	# is the workload image's one binary, libc6-dev links the static pause
	"containerd /usr/bin/containerd"
	"runc /usr/sbin/runc"
	"containernetworking-plugins /usr/lib/cni/bridge"
	"iptables /usr/sbin/iptables"
	"ipset /usr/sbin/ipset"
	"conntrack /usr/sbin/conntrack"
	"iproute2 /usr/sbin/ip"
	"busybox-static /bin/busybox"
	"libc6-dev /usr/lib/x86_64-linux-gnu/libc.a"
)

need=()
for d in "${debs[@]}"; do
	read -r pkg use <<<"$d"
	case $use in
	/*) [ -e "$use" ] || need+=("$pkg") ;;
	*) command -v "$use" >/dev/null || need+=("$pkg") ;;
	esac
done
[ ${#need[@]} -gt 0 ] || exit 0

sudo=()
if [ "$(id -u)" -ne 0 ]; then
	if ! command -v sudo >/dev/null; then
		echo "the tests need the Debian packages ${need[*]}: install them as root" >&2
		exit 1
	fi
	sudo=(sudo)
fi
if ! command -v apt-get >/dev/null; then
	echo "the tests need ${need[*]} (Debian package names); no apt-get here: install them yourself" >&2
	exit 1
fi
echo "installing ${need[*]}" >&2
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
