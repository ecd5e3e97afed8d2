package kubetest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/rest"
)

// containerdSnapshotter is containerd's default, overlayfs: each
// container's writes land in an upper directory of their own, which the
// node agent archives (a container's mounts are detached at cleanup, as
// all of the node's).
const containerdSnapshotter = "overlayfs"

// Kubelet's ports, fixed (one real node per machine).
const (
	// KubeletPort is where the real node's kubelet serves, on Node.IP.
	KubeletPort        = 10250
	kubeletHealthzPort = 10248
)

// containerdConfig is containerd 1.6's configuration. restrict_oom_score_adj:
// this machine denies raising oom_score_adj (no CAP_SYS_RESOURCE), and runc
// fails every sandbox without it.
func containerdConfig(cniConfDir string) []byte {
	return fmt.Appendf(nil, `version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = %q

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = %q
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %q
    conf_dir = %q
    max_conf_num = 1
`, containerdRoot, containerdState, containerdSocket, PauseImage, containerdSnapshotter, cniBinDir, cniConfDir)
}

// kubeletConfig is the KubeletConfiguration. Anonymous requests are
// allowed: the API server calls kubelet without a client certificate (for
// logs, exec), and a test node holds nothing to protect. Image garbage
// collection is off: the node's images cannot be pulled again. Container
// logs rotate past 64 MiB (kubelet's default is 10 MiB), so that a test's
// 30 MiB log is served whole, as one stream. Eviction thresholds are
// absolute and small: the node shares the machine's disk, and a percentage
// of a large, crowded disk (kubelet's default 10%, or even 1% of 250 GB)
// evicted every test pod as it started, for want of space no test uses.
func kubeletConfig(certFile, keyFile string) []byte {
	return fmt.Appendf(nil, `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %s
port: %d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %d
tlsCertFile: %q
tlsPrivateKeyFile: %q
authentication:
  anonymous:
    enabled: true
  webhook:
    enabled: false
authorization:
  mode: AlwaysAllow
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://%s
registerWithTaints:
- key: %s
  value: "true"
  effect: NoSchedule
resolvConf: ""
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 50Mi
  nodefs.available: 256Mi
  imagefs.available: 256Mi
  nodefs.inodesFree: "1%%"
  imagefs.inodesFree: "1%%"
serializeImagePulls: false
containerLogMaxSize: 64Mi
`, nodeIP, KubeletPort, kubeletHealthzPort, certFile, keyFile, containerdSocket, RealNodeTaintKey)
}

// writeKubeletFiles writes kubelet's serving certificate (for the node's
// address, from the serving CA the API server trusts), its client
// certificate (system:node:<name>, from the client CA, for the Node
// authorizer), its kubeconfig and its configuration into the node's
// directory, and returns the paths of the kubeconfig and configuration.
func (n *Node) writeKubeletFiles(c *Cluster, k *pki) (kubeconfig, config string, err error) {
	servingCA, err := loadAuthority(k.servingCA, filepath.Join(c.Dir, "serving-ca.key"))
	if err != nil {
		return "", "", err
	}
	clientCA, err := loadAuthority(k.clientCA, k.clientCAKey)
	if err != nil {
		return "", "", err
	}
	cert, key, err := servingCA.issueServing(n.Name, []net.IP{net.ParseIP(nodeIP)}, []string{n.Name})
	if err != nil {
		return "", "", err
	}
	clientCert, clientKey, err := clientCA.issueClient("system:node:"+n.Name, "system:nodes")
	if err != nil {
		return "", "", err
	}
	p := func(name string) string { return filepath.Join(n.dir, name) }
	for path, data := range map[string][]byte{
		p("kubelet.crt"): cert, p("kubelet.key"): key,
		p("kubelet-client.crt"): clientCert, p("kubelet-client.key"): clientKey,
		p("kubelet.yaml"): kubeletConfig(p("kubelet.crt"), p("kubelet.key")),
	} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return "", "", fmt.Errorf("writing %s: %w", path, err)
		}
	}
	cfg := &rest.Config{
		Host:            c.Config.Host,
		TLSClientConfig: rest.TLSClientConfig{CAData: k.servingCAData, CertFile: p("kubelet-client.crt"), KeyFile: p("kubelet-client.key")},
	}
	if err := c.WriteKubeconfig(p("kubelet.kubeconfig"), cfg); err != nil {
		return "", "", err
	}
	return p("kubelet.kubeconfig"), p("kubelet.yaml"), nil
}

// loadAuthority reads a CA writePKI wrote.
func loadAuthority(certPath, keyPath string) (*authority, error) {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, fmt.Errorf("reading CA certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("reading CA key: %w", err)
	}
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, fmt.Errorf("decoding CA %s: no PEM block", certPath)
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing CA %s: %w", certPath, err)
	}
	key, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing CA key %s: %w", keyPath, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("CA key %s cannot sign", keyPath)
	}
	return &authority{cert: cert, key: signer, certPEM: certPEM, keyPEM: keyPEM}, nil
}

// issueClient signs a client certificate for a user in a group.
func (a *authority) issueClient(user, group string) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generating key for %s: %w", user, err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: user, Organization: []string{group}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(certValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, key.Public(), a.key)
	if err != nil {
		return nil, nil, fmt.Errorf("signing %s: %w", user, err)
	}
	if keyPEM, err = encodeKey(key); err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM, nil
}
