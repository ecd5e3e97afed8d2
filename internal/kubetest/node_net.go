package kubetest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// The node's network: a bridge of its own whose address is the node's
// InternalIP and the pods' gateway. Pods get no default route and no
// masquerading, so they reach each other and the node only, never
// anything off this machine.
const (
	nodeBridge  = "kir0"
	nodeIP      = "10.88.0.1"
	nodePodCIDR = "10.88.0.0/24"
	cniBinDir   = "/usr/lib/cni"
)

// cniConfig is the pods' network: Debian's bridge and host-local plugins.
// host-local keeps its leases in the node's directory, not /var/lib/cni.
func cniConfig(leases string) []byte {
	return fmt.Appendf(nil, `{
  "cniVersion": "0.4.0",
  "name": "kir-test",
  "plugins": [{
    "type": "bridge",
    "bridge": %q,
    "isGateway": true,
    "ipMasq": false,
    "ipam": {
      "type": "host-local",
      "dataDir": %q,
      "ranges": [[{"subnet": %q, "gateway": %q}]]
    }
  }]
}
`, nodeBridge, leases, nodePodCIDR, nodeIP)
}

// writeCNIConfig writes the network's configuration into dir/cni.
func writeCNIConfig(dir string) (string, error) {
	confDir := filepath.Join(dir, "cni")
	if err := os.MkdirAll(confDir, 0o755); err != nil {
		return "", fmt.Errorf("creating the CNI configuration directory: %w", err)
	}
	path := filepath.Join(confDir, "10-kir-test.conflist")
	if err := os.WriteFile(path, cniConfig(filepath.Join(dir, "cni-leases")), 0o644); err != nil {
		return "", fmt.Errorf("writing the CNI configuration: %w", err)
	}
	return confDir, nil
}

// createBridge creates the bridge with the node's address, before kubelet
// starts: kubelet serves on that address.
func createBridge(ctx context.Context) error {
	// Another network on the machine (podman's default is 10.88.0.0/16)
	// would take the pods' packets.
	routes, err := hostCmd(ctx, "ip", "-o", "-4", "route", "show", "to", "match", nodeIP)
	if err != nil {
		return err
	}
	for _, r := range strings.Split(strings.TrimSpace(routes), "\n") {
		if r != "" && !strings.HasPrefix(r, "default ") {
			return fmt.Errorf("%w: the node's network %s is already routed on this machine: %s", ErrRealNodeUnavailable, nodePodCIDR, r)
		}
	}
	for _, args := range [][]string{
		// A fixed MAC: a bridge whose address was never set takes its
		// lowest port's, so it changes as pods come and go, and pods
		// that cached the old one lose their gateway for seconds (seen
		// here: ~6 s of pod-to-node packets dropped whenever a pod
		// was deleted, which reads as an enforced policy).
		{"link", "add", nodeBridge, "address", nodeBridgeMAC, "type", "bridge"},
		{"addr", "add", nodeIP + "/24", "dev", nodeBridge},
		{"link", "set", nodeBridge, "up"},
	} {
		if _, err := hostCmd(ctx, "ip", args...); err != nil {
			return fmt.Errorf("creating the node's bridge: %w", err)
		}
	}
	return nil
}

// nodeBridgeMAC is the bridge's address: locally administered, fixed.
const nodeBridgeMAC = "02:6b:69:72:00:01"

// deleteBridge deletes the veths on the bridge, then the bridge.
func deleteBridge(ctx context.Context) error {
	if _, err := os.Stat("/sys/class/net/" + nodeBridge); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	ports, _ := filepath.Glob("/sys/class/net/" + nodeBridge + "/brif/*")
	var errs []error
	for _, p := range ports {
		if _, err := hostCmd(ctx, "ip", "link", "del", filepath.Base(p)); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := hostCmd(ctx, "ip", "link", "del", nodeBridge); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// kubeRouterChains are the prefixes of kube-router's chains.
var kubeRouterChains = []string{"KUBE-ROUTER-", "KUBE-POD-FW-", "KUBE-NWPLCY-"}

// removeKubeChains removes every KUBE-* chain (kube-router's, kubelet's
// canaries) and the rules that jump to one.
func removeKubeChains(ctx context.Context) error { return removeChains(ctx, []string{"KUBE-"}) }

// removeKubeRouterChains removes kube-router's chains only, kubelet's
// staying: kube-router's own cleanup removes none.
func removeKubeRouterChains(ctx context.Context) error { return removeChains(ctx, kubeRouterChains) }

// removeChains removes the chains whose names start with one of the
// prefixes, and the rules that jump to one, in iptables and ip6tables.
// The tables are saved, filtered and restored whole.
func removeChains(ctx context.Context, prefixes []string) error {
	var errs []error
	for _, bin := range []string{"iptables", "ip6tables"} {
		saved, err := hostCmd(ctx, bin+"-save")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		kept, changed := withoutChains(saved, prefixes)
		if !changed {
			continue
		}
		cmd := exec.CommandContext(ctx, bin+"-restore")
		cmd.Stdin = strings.NewReader(kept)
		if out, err := cmd.CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("%s-restore without the chains %v: %w: %s", bin, prefixes, err, out))
		}
	}
	return errors.Join(errs...)
}

// withoutChains drops from iptables-save output the chains whose names
// start with a prefix and every rule in or jumping to one.
func withoutChains(saved string, prefixes []string) (kept string, changed bool) {
	var b strings.Builder
	sc := bufio.NewScanner(strings.NewReader(saved))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		drop := false
		for _, p := range prefixes {
			drop = drop || strings.HasPrefix(line, ":"+p) || strings.HasPrefix(line, "-A "+p) ||
				strings.Contains(line, " -j "+p) || strings.Contains(line, " -g "+p)
		}
		if drop {
			changed = true
			continue
		}
		b.WriteString(line + "\n")
	}
	return b.String(), changed
}

// destroyKubeRouterSets destroys kube-router's ipsets (KUBE-SRC-…,
// KUBE-DST-…, its TMP- sets, and their inet6: twins).
func destroyKubeRouterSets(ctx context.Context) error {
	out, err := hostCmd(ctx, "ipset", "list", "-n")
	if err != nil {
		return err
	}
	var errs []error
	for _, set := range strings.Fields(out) {
		bare := strings.TrimPrefix(set, "inet6:")
		if !strings.HasPrefix(bare, "KUBE-") && !strings.HasPrefix(bare, "TMP-") {
			continue
		}
		if _, err := hostCmd(ctx, "ipset", "destroy", set); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
