package agent

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kir.dev/kir/action"
)

// How kir fetches a capture: through the API server's pods/proxy to the
// agent's pod (RBAC: pods/proxy in the agent's namespace), over TLS (the
// API server does not check the agent's certificate, but nobody on the
// path reads the key or the evidence passively), with a key in
// HeaderCaptureKey whose SHA-256 kir put on the pod's quarantine policy
// (action.AnnotationCaptureKey). The agent reads the policy from the API
// server on every request: only who may write kir's quarantine policy can
// read the capture of the pod it isolates — not the pod itself, which
// reaches the agent's port on the node's address.

// HeaderCaptureKey carries the run's capture key.
const HeaderCaptureKey = "X-Kir-Capture-Key"

// HeaderSHA256 is the hex SHA-256 of the file served, as the agent wrote it.
const HeaderSHA256 = "X-Kir-Sha256"

// AnnotationEndpoint, on the heartbeat Lease, is where the agent serves
// captures: an Endpoint, JSON.
const AnnotationEndpoint = "kir.dev/capture-endpoint"

// Endpoint names the agent's pod and the port it serves captures on.
type Endpoint struct {
	Namespace string `json:"namespace"`
	Pod       string `json:"pod"`
	Port      int    `json:"port"`
}

// EndpointOf reads the endpoint a heartbeat Lease names, if any.
func EndpointOf(l *coordinationv1.Lease) (Endpoint, bool) {
	var e Endpoint
	raw, ok := l.Annotations[AnnotationEndpoint]
	if !ok || json.Unmarshal([]byte(raw), &e) != nil || e.Pod == "" || e.Port <= 0 {
		return Endpoint{}, false
	}
	return e, true
}

// CapturePath is the path, on the agent, of a file of a capture.
func CapturePath(quarantine, id, name string) string {
	return "/v1/captures/" + quarantine + "/" + id + "/" + name
}

// endpoint is the agent's own endpoint, if it serves.
func (a *Agent) endpoint() (Endpoint, bool) {
	if a.cfg.Listen == "" || a.cfg.Pod == "" || a.cfg.CaptureDir == "" {
		return Endpoint{}, false
	}
	_, port, err := net.SplitHostPort(a.cfg.Listen)
	if err != nil {
		return Endpoint{}, false
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		return Endpoint{}, false
	}
	return Endpoint{Namespace: a.cfg.PodNamespace, Pod: a.cfg.Pod, Port: n}, true
}

// serve serves the captures until ctx ends.
func (a *Agent) serve(ctx context.Context) error {
	if _, ok := a.endpoint(); !ok {
		return nil
	}
	cert, err := selfSigned(a.cfg.Node)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", a.cfg.Listen)
	if err != nil {
		return fmt.Errorf("serving captures: %w", err)
	}
	ln = newLimitListener(ln, maxConns, maxConnsPerIP)
	srv := captureServer(http.HandlerFunc(a.serveCapture), cert)
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	a.cfg.Log.Info("serving captures", "listen", ln.Addr().String())
	if err := srv.ServeTLS(ln, "", ""); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Bounds of the capture server, which any pod of the node reaches on the
// node's address: without them, idle connections (kept forever by
// default) and slow handshakes would pile up until the agent, which must
// still cut and report, runs out of memory. kir makes one request at a
// time, through the API server: one address.
const (
	maxConns      = 256
	maxConnsPerIP = 16
	// Requests have no body: reading one takes a round trip or two.
	readTimeout = 10 * time.Second
	idleTimeout = 30 * time.Second
)

// captureServer is the capture server, bounded. There is no write
// timeout: a layer's tar may take minutes to reach kir, and only a
// request with the key gets more than a few bytes.
func captureServer(h http.Handler, cert tls.Certificate) *http.Server {
	return &http.Server{
		Handler:           h,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: readTimeout,
		ReadTimeout:       readTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    16 << 10,
		// HTTP/1.1 only: the API server's proxy speaks it, and HTTP/2
		// would let one connection carry 250 requests at once, each an
		// API call to check its key.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
}

// limitListener accepts at most max connections at once, and perIP from
// one remote address: a pod that opens connections by the thousand waits
// for its own, not kir's.
type limitListener struct {
	net.Listener
	all chan struct{}

	mu    sync.Mutex
	perIP int
	open  map[string]int
}

func newLimitListener(ln net.Listener, max, perIP int) net.Listener {
	return &limitListener{Listener: ln, all: make(chan struct{}, max), perIP: perIP, open: map[string]int{}}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		l.all <- struct{}{}
		c, err := l.Listener.Accept()
		if err != nil {
			<-l.all
			return nil, err
		}
		ip := remoteIP(c)
		l.mu.Lock()
		full := l.open[ip] >= l.perIP
		if !full {
			l.open[ip]++
		}
		l.mu.Unlock()
		if full {
			_ = c.Close()
			<-l.all
			continue
		}
		return &limitedConn{Conn: c, release: func() { l.release(ip) }}, nil
	}
}

func (l *limitListener) release(ip string) {
	l.mu.Lock()
	if l.open[ip]--; l.open[ip] <= 0 {
		delete(l.open, ip)
	}
	l.mu.Unlock()
	<-l.all
}

func remoteIP(c net.Conn) string {
	host, _, err := net.SplitHostPort(c.RemoteAddr().String())
	if err != nil {
		return c.RemoteAddr().String()
	}
	return host
}

type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// serveCapture answers GET /v1/captures/QUARANTINE/ID/NAME.
func (a *Agent) serveCapture(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodGet {
		http.Error(w, "GET only", http.StatusMethodNotAllowed)
		return
	}
	parts := strings.SplitN(strings.TrimPrefix(req.URL.Path, "/v1/captures/"), "/", 3)
	if !strings.HasPrefix(req.URL.Path, "/v1/captures/") || len(parts) != 3 {
		http.NotFound(w, req)
		return
	}
	quarantine, id, name := parts[0], parts[1], parts[2]
	m, raw, err := sealedManifest(a.cfg.CaptureDir, quarantine, id)
	if err != nil {
		http.NotFound(w, req)
		return
	}
	if err := a.authorize(req.Context(), m, quarantine, req.Header.Get(HeaderCaptureKey)); err != nil {
		a.cfg.Log.Warn("refused a capture request", "capture", quarantine+"/"+id, "file", name, "err", err)
		http.Error(w, "forbidden: "+err.Error(), http.StatusForbidden)
		return
	}
	if name == ManifestName {
		sum := sha256.Sum256(raw)
		w.Header().Set(HeaderSHA256, hex.EncodeToString(sum[:]))
		w.Header().Set("Content-Length", strconv.Itoa(len(raw)))
		_, _ = w.Write(raw)
		return
	}
	f, entry, err := openListed(a.cfg.CaptureDir, m, quarantine, id, name)
	if err != nil {
		http.NotFound(w, req)
		return
	}
	defer f.Close()
	w.Header().Set(HeaderSHA256, entry.SHA256)
	w.Header().Set("Content-Length", strconv.FormatInt(entry.Size, 10))
	w.Header().Set("Content-Type", "application/octet-stream")
	_, _ = io.CopyN(w, f, entry.Size)
}

// authorize checks key against the hash on the pod's quarantine policy,
// read now from the API server.
func (a *Agent) authorize(ctx context.Context, m Manifest, quarantine, key string) error {
	if len(key) != 2*sha256.Size {
		// kir's keys are 32 random bytes, hex: anything else is refused
		// without asking the API server.
		return errors.New("no capture key, or not one kir makes")
	}
	name := action.PolicyName(quarantine)
	pol, err := a.cfg.Kube.NetworkingV1().NetworkPolicies(m.Namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("reading the pod's quarantine policy: %w", err)
	}
	if pol.Labels[action.LabelManagedBy] != action.ManagedByKir || pol.Spec.PodSelector.MatchLabels[action.LabelQuarantine] != quarantine {
		return fmt.Errorf("NetworkPolicy %s/%s is not kir's quarantine policy of the pod", m.Namespace, name)
	}
	want, err := hex.DecodeString(pol.Annotations[action.AnnotationCaptureKey])
	if err != nil || len(want) != sha256.Size {
		return errors.New("the quarantine policy names no capture key")
	}
	got := sha256.Sum256([]byte(key))
	if subtle.ConstantTimeCompare(got[:], want) != 1 {
		return errors.New("wrong capture key")
	}
	return nil
}

// selfSigned is the agent's certificate, made at start: the API server's
// proxy does not check it, and nothing else should trust it.
func selfSigned(node string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "kir-node-agent " + node},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
