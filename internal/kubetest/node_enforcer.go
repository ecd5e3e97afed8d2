package kubetest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
)

// kubeRouterHealthPort is kube-router's health port (its default), fixed:
// one real node per machine.
const kubeRouterHealthPort = 20244

// kubeRouterArgs runs kube-router as a NetworkPolicy enforcer only: no
// routing, no service proxy, no CNI configuration of its own.
func (n *Node) kubeRouterArgs() []string {
	return []string{
		"--kubeconfig=" + n.c.Kubeconfig,
		"--run-firewall=true",
		"--run-router=false",
		"--run-service-proxy=false",
		"--enable-cni=false",
		"--enable-ipv6=false",
		"--hostname-override=" + n.Name,
		"--service-cluster-ip-range=10.96.0.0/16",
		"--health-port=" + strconv.Itoa(kubeRouterHealthPort),
	}
}

// StartEnforcer starts kube-router, the node's NetworkPolicy enforcer, and
// returns once it answers its health check and has built its chains.
// Starting a running enforcer does nothing.
func (n *Node) StartEnforcer(ctx context.Context) error {
	n.mu.Lock()
	running := n.enforcer != nil
	n.mu.Unlock()
	if running {
		return nil
	}
	if err := n.startProc(kubeRouterName, n.bins[kubeRouterName], n.kubeRouterArgs()); err != nil {
		return err
	}
	health := "http://127.0.0.1:" + strconv.Itoa(kubeRouterHealthPort) + "/healthz"
	return n.wait(ctx, "kube-router to enforce", func(ctx context.Context) error {
		if err := httpGetOK(ctx, http.DefaultClient, health); err != nil {
			return err
		}
		_, err := hostCmd(ctx, "iptables", "-S", "KUBE-ROUTER-FORWARD")
		return err
	})
}

// StopEnforcer stops kube-router and removes its chains and ipsets: from
// then on no NetworkPolicy is enforced on the node (those already stored
// stay in the API, unenforced), as on a cluster whose network plugin
// ignores them.
func (n *Node) StopEnforcer() error {
	n.mu.Lock()
	p := n.enforcer
	n.enforcer = nil
	n.mu.Unlock()
	if p == nil {
		return nil
	}
	stopProcesses([]*process{p}, stopGrace)
	ctx, cancel := context.WithTimeout(context.Background(), nodeStartTimeout)
	defer cancel()
	if err := errors.Join(removeKubeRouterChains(ctx), destroyKubeRouterSets(ctx)); err != nil {
		return fmt.Errorf("removing kube-router's rules: %w", err)
	}
	return nil
}
