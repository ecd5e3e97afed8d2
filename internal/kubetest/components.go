package kubetest

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
)

// Names of the binaries, also the names of their processes and log files.
const (
	etcdName              = "etcd"
	apiserverName         = "kube-apiserver"
	controllerManagerName = "kube-controller-manager"
	schedulerName         = "kube-scheduler"
	kwokName              = "kwok"
)

// kwokNodeAnnotation marks the nodes kwok plays the kubelet for.
const kwokNodeAnnotation = "kwok.x-k8s.io/node"

// stages are kwok's own fast stages; see stages/README.md.
//
//go:embed stages/*.yaml
var stages embed.FS

// binDir is where the binaries are looked up; see the package documentation.
func binDir() (string, error) {
	if dir := os.Getenv("KIR_TEST_BIN"); dir != "" {
		return dir, nil
	}
	if cache := os.Getenv("KIR_TEST_CACHE"); cache != "" {
		return filepath.Join(cache, "bin"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("finding the test binaries: %w (set KIR_TEST_BIN)", err)
	}
	return filepath.Join(home, ".cache", "kir-test", "bin"), nil
}

// Binary returns the path of a binary internal/kubetest/tools/build.sh
// builds (cosign, kumo, …), looked up like the control plane's, or an
// error saying how to build it.
func Binary(name string) (string, error) {
	bins, err := findBinaries(name)
	if err != nil {
		return "", err
	}
	return bins[name], nil
}

// findBinaries returns the path of each named binary, or one error naming
// every binary that is missing.
func findBinaries(names ...string) (map[string]string, error) {
	dir, err := binDir()
	if err != nil {
		return nil, err
	}
	paths := make(map[string]string, len(names))
	var missing []error
	for _, name := range names {
		path := filepath.Join(dir, name)
		info, err := os.Stat(path) // follows build.sh's symlinks
		switch {
		case err != nil:
			missing = append(missing, err)
		case !info.Mode().IsRegular() || info.Mode()&0o111 == 0:
			missing = append(missing, fmt.Errorf("%s is not an executable file", path))
		default:
			paths[name] = path
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("test control plane binaries missing (run `make testbin`, or set KIR_TEST_BIN): %w", errors.Join(missing...))
	}
	return paths, nil
}

// ports are the ports the components listen on, all on 127.0.0.1.
type ports struct {
	etcdClient, etcdPeer, apiserver, controllerManager, scheduler, kwok int
}

// freePorts asks the kernel for n distinct free ports. Another process may
// take one before the component binds it; the component then exits and
// Start reports it.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		// Held open until all are chosen, so that they differ.
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func localURL(scheme string, port int) string {
	return scheme + "://127.0.0.1:" + strconv.Itoa(port)
}

func etcdArgs(dir string, p ports) []string {
	client, peer := localURL("http", p.etcdClient), localURL("http", p.etcdPeer)
	return []string{
		"--name=kubetest",
		"--data-dir=" + filepath.Join(dir, "etcd"),
		"--listen-client-urls=" + client,
		"--advertise-client-urls=" + client,
		"--listen-peer-urls=" + peer,
		"--initial-advertise-peer-urls=" + peer,
		"--initial-cluster=kubetest=" + peer,
		// Data that dies with the test need not survive a power cut.
		"--unsafe-no-fsync",
		"--log-level=warn",
	}
}

func apiserverArgs(p ports, k *pki, extra []string) []string {
	args := []string{
		"--etcd-servers=" + localURL("http", p.etcdClient),
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(p.apiserver),
		"--tls-cert-file=" + k.servingCert,
		"--tls-private-key-file=" + k.servingKey,
		"--client-ca-file=" + k.clientCA,
		"--token-auth-file=" + k.tokenAuthFile,
		"--authorization-mode=Node,RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + k.saPub,
		"--service-account-signing-key-file=" + k.saKey,
		"--service-cluster-ip-range=10.96.0.0/16",
		// The default reconciler refuses a loopback advertise address.
		"--endpoint-reconciler-type=none",
		// Benchmarks write thousands of objects as fast as they can.
		"--enable-priority-and-fairness=false",
		"--max-requests-inflight=2000",
		"--max-mutating-requests-inflight=1000",
		// Logs, exec and port-forward go to kwok at the node's InternalIP:
		// the Hostname address (the node name) does not resolve.
		"--kubelet-preferred-address-types=InternalIP",
		"--kubelet-certificate-authority=" + k.servingCA,
		"--allow-privileged=true",
		// KIR_TEST_PROFILING=1 serves /debug/pprof, for benchmarks that
		// profile the API server.
		"--profiling=" + strconv.FormatBool(os.Getenv("KIR_TEST_PROFILING") == "1"),
	}
	return append(args, extra...)
}

// The controller-manager and the scheduler get no authentication or
// authorization kubeconfig: their /healthz is open anyway, and with one they
// look for a request-header CA the apiserver does not have, logging an
// error for every attempt.

func controllerManagerArgs(p ports, k *pki, kubeconfig string) []string {
	return []string{
		"--kubeconfig=" + kubeconfig,
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(p.controllerManager),
		"--tls-cert-file=" + k.servingCert,
		"--tls-private-key-file=" + k.servingKey,
		"--service-account-private-key-file=" + k.saKey,
		"--root-ca-file=" + k.servingCA,
		"--use-service-account-credentials=false",
		// Client certificates from CSRs (signer kubernetes.io/kube-apiserver-client)
		// must be trusted by the apiserver, so the client CA signs them.
		"--cluster-signing-cert-file=" + k.clientCA,
		"--cluster-signing-key-file=" + k.clientCAKey,
		"--controllers=*",
		"--leader-elect=false",
		"--kube-api-qps=500",
		"--kube-api-burst=1000",
		"--profiling=false",
	}
}

// schedulerConfig sets the client limits in a file: kube-scheduler's
// --kube-api-qps flags are deprecated and ignored when a config is given.
func schedulerConfig(kubeconfig string) []byte {
	return fmt.Appendf(nil, `apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: %q
  qps: 500
  burst: 1000
leaderElection:
  leaderElect: false
`, kubeconfig)
}

func schedulerArgs(p ports, k *pki, config string) []string {
	return []string{
		"--config=" + config,
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(p.scheduler),
		"--tls-cert-file=" + k.servingCert,
		"--tls-private-key-file=" + k.servingKey,
		"--profiling=false",
	}
}

// kwokConfig is kwok's --config: its stages, then the extra documents.
func kwokConfig(extra [][]byte) ([]byte, error) {
	var docs [][]byte
	for _, name := range []string{
		"node-initialize.yaml",
		"node-heartbeat.yaml",
		"pod-ready.yaml",
		"pod-complete.yaml",
		"pod-delete.yaml",
	} {
		b, err := fs.ReadFile(stages, "stages/"+name)
		if err != nil {
			return nil, fmt.Errorf("reading embedded kwok stage: %w", err)
		}
		docs = append(docs, b)
	}
	docs = append(docs, extra...)
	for i, d := range docs {
		docs[i] = bytes.TrimSpace(d)
	}
	return append(bytes.Join(docs, []byte("\n---\n")), '\n'), nil
}

func kwokArgs(p ports, k *pki, kubeconfig, config string) []string {
	return []string{
		"--kubeconfig=" + kubeconfig,
		"--config=" + config,
		"--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector=" + kwokNodeAnnotation + "=fake",
		"--node-ip=127.0.0.1",
		"--node-port=" + strconv.Itoa(p.kwok),
		"--server-address=127.0.0.1:" + strconv.Itoa(p.kwok),
		"--tls-cert-file=" + k.servingCert,
		"--tls-private-key-file=" + k.servingKey,
		"--cidr=10.0.0.1/16",
		// Renewing node leases keeps the node lifecycle controller from
		// tainting the nodes between two (20 to 45 s apart) heartbeats.
		"--node-lease-duration-seconds=40",
	}
}
