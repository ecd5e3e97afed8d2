package kubetest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// RealNodeName is the real node's name; one runs per machine.
const RealNodeName = "kir-real-node"

// RealNodeTaintKey taints the real node (value "true", NoSchedule), so that
// only pods that tolerate it (Node.Pin) run there.
const RealNodeTaintKey = "kir.dev/real-node"

// nodeStartTimeout bounds each wait of the node's start.
const nodeStartTimeout = 90 * time.Second

// Node is a real node (Options.RealNode): kubelet, containerd with runc and
// the CNI bridge plugin, and kube-router enforcing NetworkPolicies, against
// the cluster's control plane. Cluster.Stop stops it first.
type Node struct {
	// Name is the Node object's name.
	Name string
	// IP is its InternalIP, the pods' gateway; kubelet serves on IP:10250.
	IP string
	// PodCIDR is the pods' network; every pod gets an address in it.
	PodCIDR string
	// PauseImage and BusyboxImage are the images present on the node.
	PauseImage, BusyboxImage string
	// RuntimeEndpoint is containerd's CRI socket, for a test that asks the
	// runtime about a pod (its sandbox, its processes).
	RuntimeEndpoint string

	dir      string
	bins     map[string]string
	c        *Cluster
	mirror   *lockedWriter
	lock     *os.File
	mu       sync.Mutex // guards procs and enforcer
	procs    []*process // containerd, kubelet
	enforcer *process   // kube-router, nil while stopped
}

// Toleration tolerates the node's taint.
func (n *Node) Toleration() corev1.Toleration {
	return corev1.Toleration{Key: RealNodeTaintKey, Operator: corev1.TolerationOpEqual, Value: "true", Effect: corev1.TaintEffectNoSchedule}
}

// Pin puts a pod on the node: its name and a toleration of its taint.
func (n *Node) Pin(spec *corev1.PodSpec) {
	spec.NodeName = n.Name
	spec.Tolerations = append(spec.Tolerations, n.Toleration())
}

// startNode starts the real node and returns once it is Ready and
// kube-router has set up its chains. On failure the host is cleaned.
func startNode(ctx context.Context, c *Cluster, k *pki, mirror *lockedWriter) (_ *Node, err error) {
	if err := RealNodePrerequisites(); err != nil {
		return nil, err
	}
	bins, err := findBinaries(kubeletName, kubeRouterName, pauseName)
	if err != nil {
		return nil, err
	}
	n := &Node{
		Name: RealNodeName, IP: nodeIP, PodCIDR: nodePodCIDR, PauseImage: PauseImage, BusyboxImage: BusyboxImage,
		RuntimeEndpoint: "unix://" + containerdSocket,
		dir:             filepath.Join(c.Dir, "node"), bins: bins, c: c, mirror: mirror,
	}
	if n.lock, err = lockNode(ctx); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, n.stop())
		}
	}()
	if err := os.MkdirAll(n.dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the node's directory: %w", err)
	}
	if err := recordSysctls(); err != nil {
		return nil, err
	}
	if err := cleanHost(ctx); err != nil {
		return nil, fmt.Errorf("cleaning what an earlier real node left: %w", err)
	}
	if err := createBridge(ctx); err != nil {
		return nil, err
	}
	if err := n.startContainerd(ctx); err != nil {
		return nil, err
	}
	if err := n.startKubelet(ctx, k); err != nil {
		return nil, err
	}
	if err := n.StartEnforcer(ctx); err != nil {
		return nil, err
	}
	return n, nil
}

// startContainerd starts containerd, waits for its socket and imports the
// node's images.
func (n *Node) startContainerd(ctx context.Context) error {
	confDir, err := writeCNIConfig(n.dir)
	if err != nil {
		return err
	}
	conf := filepath.Join(n.dir, "containerd.toml")
	if err := os.WriteFile(conf, containerdConfig(confDir), 0o600); err != nil {
		return fmt.Errorf("writing containerd's configuration: %w", err)
	}
	if err := n.startProc(containerdName, containerdName, []string{"--config", conf}); err != nil {
		return err
	}
	if err := n.wait(ctx, "containerd's socket", func(ctx context.Context) error {
		_, err := hostCmd(ctx, "ctr", "--address", containerdSocket, "version")
		return err
	}); err != nil {
		return err
	}
	return n.importNodeImages(ctx)
}

// startKubelet starts kubelet and waits for its Node to be Ready, then
// gives the Node its podCIDR (no controller allocates one here).
func (n *Node) startKubelet(ctx context.Context, k *pki) error {
	kubeconfig, config, err := n.writeKubeletFiles(n.c, k)
	if err != nil {
		return err
	}
	args := []string{
		"--config=" + config,
		"--kubeconfig=" + kubeconfig,
		"--hostname-override=" + n.Name,
		"--node-ip=" + n.IP,
	}
	if err := n.startProc(kubeletName, n.bins[kubeletName], args); err != nil {
		return err
	}
	if err := n.wait(ctx, "the node to be Ready", n.ready); err != nil {
		return err
	}
	patch := fmt.Appendf(nil, `{"spec":{"podCIDR":%q,"podCIDRs":[%q]}}`, n.PodCIDR, n.PodCIDR)
	if _, err := n.c.Client.CoreV1().Nodes().Patch(ctx, n.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("setting the node's podCIDR: %w", err)
	}
	return nil
}

// ready checks that the Node is Ready.
func (n *Node) ready(ctx context.Context) error {
	node, err := n.c.Client.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	for _, cond := range node.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			if cond.Status == corev1.ConditionTrue {
				return nil
			}
			return fmt.Errorf("node %s not Ready: %s", n.Name, cond.Message)
		}
	}
	return fmt.Errorf("node %s has no Ready condition yet", n.Name)
}

// startProc starts one of the node's processes from the cluster's launcher.
func (n *Node) startProc(name, binary string, args []string) error {
	p, err := startProcess(n.c.launcher, n.dir, name, binary, args, n.mirror)
	if err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if name == kubeRouterName {
		n.enforcer = p
	} else {
		n.procs = append(n.procs, p)
	}
	return nil
}

// wait polls check until it passes, failing early when one of the node's
// processes exits.
func (n *Node) wait(ctx context.Context, what string, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, nodeStartTimeout)
	defer cancel()
	for {
		attempt, cancelAttempt := context.WithTimeout(ctx, 5*time.Second)
		last := check(attempt)
		cancelAttempt()
		if last == nil {
			return nil
		}
		for _, p := range n.processes() {
			if p.exited() {
				return fmt.Errorf("%s exited (%v) while waiting for %s; logs follow\n%s", p.name, p.exitError(), what, n.Logs())
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last check: %v); logs follow\n%s", what, ctx.Err(), last, n.Logs())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (n *Node) processes() []*process {
	n.mu.Lock()
	defer n.mu.Unlock()
	procs := append([]*process(nil), n.procs...)
	if n.enforcer != nil {
		procs = append(procs, n.enforcer)
	}
	return procs
}

// stop stops kube-router, kubelet, the pods and containerd, then undoes
// what they changed on the host and releases the lock.
func (n *Node) stop() error {
	// Not the caller's context: a cancelled test must still clean the host.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n.mu.Lock()
	procs := n.procs
	enforcer := n.enforcer
	n.procs, n.enforcer = nil, nil
	n.mu.Unlock()
	if enforcer != nil {
		stopProcesses([]*process{enforcer}, stopGrace)
	}
	var containerd, others []*process
	for _, p := range procs {
		if p.name == containerdName {
			containerd = append(containerd, p)
		} else {
			others = append(others, p)
		}
	}
	stopProcesses(others, stopGrace)
	killPodProcesses()
	stopProcesses(containerd, stopGrace)
	err := errors.Join(cleanHost(ctx), restoreSysctls())
	if n.lock != nil {
		n.lock.Close() // releases the flock
	}
	return err
}

// Logs returns the last lines of kubelet's, containerd's and
// kube-router's logs, for failure messages.
func (n *Node) Logs() string {
	var b strings.Builder
	for _, name := range []string{containerdName, kubeletName, kubeRouterName} {
		path := filepath.Join(n.dir, name+".log")
		text, err := tail(path, logTailLines)
		if err != nil {
			text = "(" + err.Error() + ")"
		}
		fmt.Fprintf(&b, "----- real node: %s, last %d lines of %s -----\n%s\n", name, logTailLines, path, text)
	}
	return b.String()
}

// KubeletAddress is host:port of the node's kubelet, which pods can reach
// unless a policy stops them.
func (n *Node) KubeletAddress() string {
	return net.JoinHostPort(n.IP, strconv.Itoa(KubeletPort))
}
