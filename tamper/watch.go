package tamper

import (
	"context"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	corelisters "k8s.io/client-go/listers/core/v1"
	networkinglisters "k8s.io/client-go/listers/networking/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"kir.dev/kir/action"
	"kir.dev/kir/contain"
)

// workers check pods at once; each check is a few requests.
const workers = 4

// guard is the active guard, while it leads.
type guard struct {
	o        Options
	mem      *memory
	policies networkinglisters.NetworkPolicyLister
	// pods are the labelled pods, as the watch last saw them.
	pods  corelisters.PodLister
	queue workqueue.TypedRateLimitingInterface[key]

	mu sync.Mutex
	// admitted are the admitting policies reported, by pod UID, policy
	// name and UID and the traffic allowed: each is reported once per
	// leadership.
	admitted map[string]bool
	// markState is, for a pod whose release is marked while its policy
	// stands, the resourceVersions of pod and policy last acted on.
	markState map[types.UID]string
	// unknown are the kir quarantine policies without memory, by policy
	// UID: when first seen, and whether reported.
	unknown map[types.UID]unknownPolicy
	// unknownNS are when such a policy was last reported, by namespace.
	unknownNS map[string]time.Time
	// fence is the last fence problem reported.
	fence string
	// marked are the pods with a release mark at the last resync: never
	// taken as intact from the caches alone.
	marked map[types.UID]bool
}

// unknownPolicy is a kir quarantine policy the guard has no memory of.
type unknownPolicy struct {
	first    time.Time
	reported bool
}

// key names one quarantined pod: its namespace and UID.
type key struct {
	ns  string
	uid types.UID
}

func newGuard(o Options) *guard {
	return &guard{
		o:   o,
		mem: &memory{o: o, by: map[types.UID]remembered{}},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[key](),
			workqueue.TypedRateLimitingQueueConfig[key]{Name: "kir-tamper"}),
		admitted: map[string]bool{}, markState: map[types.UID]string{}, unknown: map[types.UID]unknownPolicy{}, unknownNS: map[string]time.Time{},
	}
}

// run watches and restores until ctx ends.
func (g *guard) run(ctx context.Context) {
	defer g.queue.ShutDown()
	for {
		err := g.mem.load(ctx)
		if err == nil {
			break
		}
		g.o.Log.Error("tamper guard: cannot start", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(g.o.RetryPeriod):
		}
	}
	if p, err := Missing(ctx, g.o); err != nil || p != "" {
		g.o.Log.Error("tamper guard: "+p, "err", err) // it tries all the same: a watch denied is retried
	}
	stopWatching := g.watch(ctx)
	defer stopWatching()

	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for g.next(ctx) {
			}
		})
	}
	g.resync(ctx)
	tick := time.NewTicker(g.o.Resync)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			g.queue.ShutDown()
			wg.Wait()
			return
		case <-tick.C:
			g.resync(ctx)
		}
	}
}

// watch starts the watches of the labelled pods and of every
// NetworkPolicy, and returns once their caches are filled; the returned
// func stops them.
func (g *guard) watch(ctx context.Context) (stop func()) {
	quarantined := informers.NewSharedInformerFactoryWithOptions(g.o.Kube, g.o.Resync, informers.WithNamespace(g.o.Watch),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = action.LabelQuarantine }))
	all := informers.NewSharedInformerFactoryWithOptions(g.o.Kube, g.o.Resync, informers.WithNamespace(g.o.Watch))
	pods := quarantined.Core().V1().Pods().Informer()
	g.pods = quarantined.Core().V1().Pods().Lister()
	pols := all.Networking().V1().NetworkPolicies()
	g.policies = pols.Lister()
	_, _ = pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    g.onPod,
		UpdateFunc: func(_, obj any) { g.onPod(obj) },
		DeleteFunc: g.onPod, // a pod whose label was removed is "deleted" from this watch
	})
	_, _ = pols.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    g.onPolicy,
		UpdateFunc: func(_, obj any) { g.onPolicy(obj) },
		DeleteFunc: g.onPolicy,
	})
	// The memory Leases, in kir's namespace: the guard learns a quarantine
	// from them alone (see the package doc).
	memories := informers.NewSharedInformerFactoryWithOptions(g.o.Kube, g.o.Resync, informers.WithNamespace(g.o.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = LabelComponent + "=" + ComponentMemory }))
	_, _ = memories.Coordination().V1().Leases().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    g.onMemory,
		UpdateFunc: func(_, obj any) { g.onMemory(obj) },
		// A deleted memory changes nothing while the guard runs: release
		// deletes it after its mark (which the guard heeds), and the
		// guard forgets a pod only by the mark or the pod's end.
	})
	for _, f := range []informers.SharedInformerFactory{quarantined, all, memories} {
		f.Start(ctx.Done())
	}
	for _, f := range []informers.SharedInformerFactory{quarantined, all, memories} {
		f.WaitForCacheSync(ctx.Done())
	}
	return func() { quarantined.Shutdown(); all.Shutdown(); memories.Shutdown() }
}

// onMemory learns the quarantine a memory Lease holds, and queues its pod.
func (g *guard) onMemory(obj any) {
	l, ok := obj.(*coordinationv1.Lease)
	if !ok {
		return
	}
	if q, ok := g.mem.read(l); ok {
		g.mem.set(q, l)
		g.queue.Add(key{q.Namespace, q.UID})
	}
}

// resync queues every known quarantine and every kir policy, and checks
// the fence.
func (g *guard) resync(ctx context.Context) {
	g.listMarks(ctx)
	for _, q := range g.mem.all() {
		g.queue.Add(key{q.Namespace, q.UID})
	}
	if pols, err := g.policies.List(labelsKir()); err == nil {
		for _, p := range pols {
			g.onPolicy(p)
		}
	}
	g.checkFence(ctx)
}

func (g *guard) onPod(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	if p, ok := obj.(*corev1.Pod); ok {
		g.queue.Add(key{p.Namespace, p.UID})
	}
}

// onPolicy queues the pod of a kir quarantine policy, and every known
// quarantine of the namespace of any other (it may admit traffic to one).
func (g *guard) onPolicy(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	p, ok := obj.(*networkingv1.NetworkPolicy)
	if !ok {
		return
	}
	if uid, ok := strings.CutPrefix(p.Name, action.PolicyName("")); ok && uid != "" {
		g.queue.Add(key{p.Namespace, types.UID(uid)})
	}
	for _, q := range g.mem.all() {
		if q.Namespace == p.Namespace {
			g.queue.Add(key{q.Namespace, q.UID})
		}
	}
}

// next checks one queued pod; false once the queue shut down.
func (g *guard) next(ctx context.Context) bool {
	k, quit := g.queue.Get()
	if quit {
		return false
	}
	defer g.queue.Done(k)
	again, err := g.check(ctx, k)
	switch {
	case err != nil && ctx.Err() == nil:
		g.o.Log.Error("tamper guard: checking a quarantined pod", "namespace", k.ns, "uid", k.uid, "err", err)
		g.queue.AddRateLimited(k)
	case again > 0:
		g.queue.Forget(k)
		g.queue.AddAfter(k, again)
	default:
		g.queue.Forget(k)
	}
	return true
}

// checkFence reports the fence's problem when it changes.
func (g *guard) checkFence(ctx context.Context) {
	if g.o.Fence == nil {
		return
	}
	problem, err := g.o.Fence(ctx)
	if err != nil {
		g.o.Log.Error("tamper guard: checking kir's admission policies", "err", err)
		return
	}
	g.mu.Lock()
	changed := problem != g.fence
	g.fence = problem
	g.mu.Unlock()
	if changed && problem != "" {
		g.announce(ctx, Finding{Kind: FenceChanged, Object: "ValidatingAdmissionPolicies", What: problem,
			Manager: "see the API server's audit log: admission policies cannot protect themselves"})
	}
}

// listMarks notes which pods have a release mark, in one request.
func (g *guard) listMarks(ctx context.Context) {
	list, err := g.o.Kube.CoordinationV1().Leases(g.o.Namespace).List(ctx, metav1.ListOptions{LabelSelector: labelsKir().String()})
	if err != nil {
		g.o.Log.Error("tamper guard: listing the release marks", "namespace", g.o.Namespace, "err", err)
		return
	}
	marked := map[types.UID]bool{}
	for _, l := range list.Items {
		if uid, ok := strings.CutPrefix(l.Name, contain.ReleasingLease("")); ok {
			marked[types.UID(uid)] = true
		}
	}
	g.mu.Lock()
	g.marked = marked
	g.mu.Unlock()
}
