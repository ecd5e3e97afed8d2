package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"kir.dev/kir/action"
	"kir.dev/kir/agent/container"
	"kir.dev/kir/agent/volatile"
)

// Config configures an agent.
type Config struct {
	Kube kubernetes.Interface
	// Node is the node the agent runs on; it watches that node's pods only.
	Node string
	// Namespace is kir's namespace, where the agent's Leases live.
	Namespace string
	// ProcRoot is the host's /proc (the agent runs with hostPID).
	ProcRoot string
	// ProbeTimeout bounds one probe; ProbeEvery spaces them; ProbeFor is
	// how long the agent probes before it reports the isolation not
	// enforced.
	ProbeTimeout, ProbeEvery, ProbeFor time.Duration
	Log                                *slog.Logger
	Now                                func() time.Time

	// CaptureDir keeps the captures of quarantined pods (capture.go)
	// until their release; empty takes none. LayerMaxBytes is the byte
	// budget of one container's writable layer (0: layer.DefaultMaxBytes).
	CaptureDir    string
	LayerMaxBytes int64
	// HostRoot is where the host's file system is seen, to read the
	// containers' writable layers at the paths the kernel reports:
	// /proc/1/root (the host init's root; needs CAP_SYS_PTRACE) for an
	// agent in a container, / for one on the host.
	HostRoot string
	// Listen is the address the agent serves captures on (serve.go), and
	// Pod and PodNamespace name the agent's own pod, which kir reaches
	// through the API server's pods/proxy; empty serves nothing.
	Listen            string
	Pod, PodNamespace string

	// net does the work inside network namespaces; nil means the real one.
	net network
}

func (c *Config) defaults() {
	if c.ProcRoot == "" {
		c.ProcRoot = "/proc"
	}
	if c.ProbeTimeout == 0 {
		c.ProbeTimeout = 250 * time.Millisecond
	}
	if c.ProbeEvery == 0 {
		c.ProbeEvery = 100 * time.Millisecond
	}
	if c.ProbeFor == 0 {
		c.ProbeFor = 2 * time.Minute
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Namespace == "" {
		c.Namespace = action.DefaultKirNamespace
	}
	if c.HostRoot == "" {
		c.HostRoot = container.HostPath(c.ProcRoot, "")
	}
	if c.net == nil {
		c.net = hostNetwork{}
	}
}

// network is what the agent does to packets: probes, socket destruction
// and conntrack, inside a pod's network namespace or the host's.
type network interface {
	// open holds the network namespace at nsPath until Close.
	open(nsPath string) (podNS, error)
	// probe connects to target over TCP from inside ns (nil: the host's)
	// and says how it ended: outcomeConnected, a refusal, a timeout,
	// unreachable, or outcomeFailed (the probe could not run: it proves
	// nothing).
	probe(ctx context.Context, ns podNS, target netip.AddrPort, timeout time.Duration) (outcome, detail string)
	// cut destroys the established TCP and connected UDP sockets inside
	// the namespace, never a listening one.
	cut(ctx context.Context, ns podNS) (tcp, udp int, errs []string, err error)
	// sessions counts the established TCP and connected UDP sockets.
	sessions(ctx context.Context, ns podNS) (int, error)
	// deleteFlows deletes the host's conntrack entries of ips (original
	// or reply tuple); countFlows counts them.
	deleteFlows(ctx context.Context, ips []netip.Addr) (int, error)
	countFlows(ctx context.Context, ips []netip.Addr) (int, error)
	// sockets lists every TCP and UDP socket of ns, joined to procs.
	sockets(ctx context.Context, ns podNS, procs []volatile.Process) ([]volatile.Socket, error)
}

// podNS is a network namespace the agent holds open.
type podNS interface{ Close() error }

// The outcomes of a probe that decide: any other means a filter stopped it.
const (
	outcomeConnected = "connected"
	outcomeFailed    = "failed"
)

// Agent watches the quarantined pods of one node, confirms their
// isolation and cuts their open sessions. It decides nothing: kir labels
// and isolates; the agent reports what the node sees.
type Agent struct {
	cfg     Config
	targets []netip.AddrPort

	mu      sync.Mutex
	working map[types.UID]*job
	wg      sync.WaitGroup
}

// job is the agent's work on one pod's quarantine.
type job struct {
	quarantine string
	request    string // the latest run's request (AnnotationConfirm); guarded by Agent.mu
	cancel     context.CancelFunc
	done       chan struct{} // closed once its work returned
}

// Run runs the agent until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	cfg.defaults()
	if cfg.Kube == nil || cfg.Node == "" {
		return errors.New("agent: a client and a node name are required")
	}
	node, err := cfg.Kube.CoreV1().Nodes().Get(ctx, cfg.Node, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("reading node %s: %w", cfg.Node, err)
	}
	a := &Agent{cfg: cfg, targets: probeTargets(node), working: map[types.UID]*job{}}
	if len(a.targets) == 0 {
		return fmt.Errorf("node %s has no InternalIP and kubelet port to probe", cfg.Node)
	}
	cfg.Log.Info("node agent started", "node", cfg.Node, "namespace", cfg.Namespace, "probe", a.targets)
	defer a.wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- a.serve(ctx) }()
	err = a.watch(ctx)
	cancel()
	return errors.Join(err, <-served)
}

// probeTargets are what a pod on node reaches unless it is isolated: the
// node's own kubelet, at each InternalIP. It is on this machine and it
// always listens, so a probe of it from the host always gets through.
func probeTargets(node *corev1.Node) []netip.AddrPort {
	port := node.Status.DaemonEndpoints.KubeletEndpoint.Port
	if port == 0 {
		port = 10250
	}
	var out []netip.AddrPort
	for _, a := range node.Status.Addresses {
		if a.Type != corev1.NodeInternalIP {
			continue
		}
		if ip, err := netip.ParseAddr(a.Address); err == nil {
			out = append(out, netip.AddrPortFrom(ip, uint16(port)))
		}
	}
	return out
}

// watch follows the quarantined pods of the node.
func (a *Agent) watch(ctx context.Context) error {
	f := informers.NewSharedInformerFactoryWithOptions(a.cfg.Kube, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", a.cfg.Node).String()
		o.LabelSelector = action.LabelQuarantine
	}))
	inf := f.Core().V1().Pods().Informer()
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { a.seen(ctx, obj) },
		UpdateFunc: func(_, obj any) { a.seen(ctx, obj) },
		// Released (the label went) or deleted: the agent stops and
		// drops its report, and does nothing else to the pod.
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if pod, ok := obj.(*corev1.Pod); ok {
				j := a.forget(pod.UID)
				a.wg.Go(func() {
					if j != nil {
						<-j.done // no report written after the drop
					}
					a.thaw(ctx, pod)
					a.drop(ctx, pod)
				})
			}
		},
	})
	if err != nil {
		return err
	}
	if err := a.watchPolicies(ctx, inf.GetStore()); err != nil {
		return err
	}
	f.Start(ctx.Done())
	// The heartbeat says the agent answers: only once it sees its pods.
	if cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		a.pruneCaptures(ctx, inf.GetStore())
		a.wg.Go(func() { a.heartbeat(ctx) })
	}
	<-ctx.Done()
	f.Shutdown()
	a.mu.Lock()
	for _, j := range a.working {
		j.cancel()
	}
	a.mu.Unlock()
	return nil
}

// watchPolicies follows kir's quarantine policies, which carry each run's
// request: a run that contains a pod again asks the agent again.
func (a *Agent) watchPolicies(ctx context.Context, pods cache.Store) error {
	f := informers.NewSharedInformerFactoryWithOptions(a.cfg.Kube, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.LabelSelector = action.LabelManagedBy + "=" + action.ManagedByKir + "," + action.LabelQuarantine
	}))
	asked := func(obj any) {
		pol, ok := obj.(*networkingv1.NetworkPolicy)
		if !ok || pol.Annotations[action.AnnotationConfirm] == "" {
			return
		}
		item, exists, err := pods.GetByKey(pol.Annotations[action.AnnotationPod])
		if pod, ok := item.(*corev1.Pod); err == nil && exists && ok && pod.Labels[action.LabelQuarantine] == pol.Labels[action.LabelQuarantine] {
			a.start(ctx, pod, pol.Annotations[action.AnnotationConfirm])
		}
	}
	_, err := f.Networking().V1().NetworkPolicies().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    asked,
		UpdateFunc: func(_, obj any) { asked(obj) },
	})
	if err != nil {
		return err
	}
	f.Start(ctx.Done())
	go func() {
		<-ctx.Done()
		f.Shutdown()
	}()
	return nil
}

// seen starts the work on a pod whose quarantine label is new to the
// agent; a pod whose label went (released) is forgotten, its work
// stopped: the agent takes no action on released pods.
func (a *Agent) seen(ctx context.Context, obj any) {
	pod, ok := obj.(*corev1.Pod)
	switch {
	case !ok:
	case pod.DeletionTimestamp != nil:
		// Deleted: its processes must be able to die (a frozen process
		// does not, not even of SIGKILL on cgroup v1).
		a.wg.Go(func() { a.thaw(ctx, pod) })
	default:
		a.start(ctx, pod, "")
	}
}

// start starts the work on a quarantined pod, unless it is under way for
// that quarantine: then a new request (a run that contains it again) is
// answered by the work in progress, or by new work once it is done.
func (a *Agent) start(ctx context.Context, pod *corev1.Pod, request string) {
	value := pod.Labels[action.LabelQuarantine]
	if value != action.QuarantineValue(pod.UID) {
		// Not kir's label (absent, or copied from another pod's).
		a.forget(pod.UID)
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if j, ok := a.working[pod.UID]; ok && j.quarantine == value {
		if request == "" || request == j.request {
			return
		}
		select {
		case <-j.done: // answered an earlier request: start again
		default:
			j.request = request
			return
		}
	}
	jctx, cancel := context.WithCancel(ctx)
	j := &job{quarantine: value, request: request, cancel: cancel, done: make(chan struct{})}
	a.working[pod.UID] = j
	seenAt := a.cfg.Now().UTC()
	a.wg.Go(func() {
		defer close(j.done)
		defer cancel()
		a.respond(jctx, pod.DeepCopy(), seenAt)
	})
}

// requestOf is the request the work on a pod answers.
func (a *Agent) requestOf(uid types.UID) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if j, ok := a.working[uid]; ok {
		return j.request
	}
	return ""
}

// forget stops the work on a pod and returns it, nil if there was none.
func (a *Agent) forget(uid types.UID) *job {
	a.mu.Lock()
	defer a.mu.Unlock()
	j, ok := a.working[uid]
	if !ok {
		return nil
	}
	j.cancel()
	delete(a.working, uid)
	return j
}

// pruneCaptures deletes the captures of pods no longer quarantined on the
// node: released or deleted while no agent ran (the captures' volume
// outlives the agent's restarts). What it froze of them, it thaws first.
func (a *Agent) pruneCaptures(ctx context.Context, pods cache.Store) {
	if a.cfg.CaptureDir == "" {
		return
	}
	entries, err := os.ReadDir(a.cfg.CaptureDir)
	if err != nil {
		return // none yet
	}
	kept := map[string]bool{}
	for _, obj := range pods.List() {
		if pod, ok := obj.(*corev1.Pod); ok {
			kept[action.QuarantineValue(pod.UID)] = true
		}
	}
	for _, e := range entries {
		if !kept[e.Name()] {
			a.thawRecorded(ctx, e.Name())
			if err := removeCaptures(a.cfg.CaptureDir, e.Name()); err != nil {
				a.cfg.Log.Warn("deleting the captures of a pod no longer quarantined", "dir", e.Name(), "err", err)
			}
		}
	}
}
