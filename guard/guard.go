package guard

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"kir.dev/kir/action"
	"kir.dev/kir/playbooks"
)

// Defaults of Guard and of the protect list.
const (
	DefaultNamespace      = action.DefaultKirNamespace
	DefaultFalcoNamespace = "falco"
	// ConfigMap is the protect list's name, in kir's namespace.
	ConfigMap = "kir-protect"
	// The ConfigMap's keys.
	KeyNamespaces     = "namespaces"
	KeyPodSelectors   = "podSelectors"
	KeyFalcoNamespace = "falcoNamespace"
	// LabelControlPlane marks control-plane nodes.
	LabelControlPlane = "node-role.kubernetes.io/control-plane"
)

// The rules a refusal names.
const (
	RuleKir          = "kir's own namespace"
	RuleKubeSystem   = "kube-system"
	RuleFalco        = "the Falco namespace"
	RuleNamespace    = "protect list: namespaces"
	RulePodSelector  = "protect list: podSelectors"
	RuleControlPlane = "a control-plane node"
	RuleNodeOfKir    = "the node of a protected pod"
	RuleUnreadable   = "the protect list cannot be read"
)

// Guard decides whether a run may aim at its targets. The zero value
// guards with the built-in list, kir living in DefaultNamespace.
type Guard struct {
	// Namespace is kir's own namespace, where the protect list lives;
	// "" means DefaultNamespace.
	Namespace string
	// Force lets a refused run go on, recording what it overrode: a
	// person's decision, never kir serve's.
	Force bool
}

// Refusal is one target a rule protects.
type Refusal struct {
	Rule   string `json:"rule"`
	Target string `json:"target"`
	// Detail says more, such as the selector that matched.
	Detail string `json:"detail,omitempty"`
}

func (r Refusal) String() string {
	s := r.Target + " (" + r.Rule
	if r.Detail != "" {
		s += ": " + r.Detail
	}
	return s + ")"
}

// RefusedError is a run the guard refused: nothing ran.
type RefusedError struct {
	Playbook string
	Refusals []Refusal
}

func (e *RefusedError) Error() string {
	parts := make([]string, len(e.Refusals))
	for i, r := range e.Refusals {
		parts[i] = r.String()
	}
	return fmt.Sprintf("refused: playbook %s would act on what kir never targets: %s; a person may override with --force", e.Playbook, strings.Join(parts, "; "))
}

// Rules are the RBAC rules the guard reads with: the protect list, and
// the pods and nodes it checks.
func Rules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{ConfigMap}, Verbs: []string{"get"}},
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list"}},
		{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get"}},
	}
}

// Check is the engine's Guard hook (playbooks.Engine.Guard): it returns a
// *RefusedError when the run would act on a protected target, or, with
// Force, the refusals it overrode, as lines for the run's record.
func (g *Guard) Check(ctx context.Context, env action.Env, pb *playbooks.Playbook, params map[string]any) ([]string, error) {
	switch pb.Category {
	case playbooks.CategoryRelease, playbooks.CategoryRollback, playbooks.CategoryCollection:
		return nil, nil
	}
	refusals, err := g.Refusals(ctx, env.Kube, params)
	if err != nil {
		refusals = append(refusals, Refusal{Rule: RuleUnreadable, Target: g.namespace() + "/" + ConfigMap, Detail: err.Error()})
	}
	if len(refusals) == 0 {
		return nil, nil
	}
	if !g.Force {
		return nil, &RefusedError{Playbook: pb.Name, Refusals: refusals}
	}
	out := make([]string, len(refusals))
	for i, r := range refusals {
		out[i] = "forced: " + r.String()
	}
	return out, nil
}

func (g *Guard) namespace() string {
	if g.Namespace == "" {
		return DefaultNamespace
	}
	return g.Namespace
}

// Refusals lists what of params' targets is protected. An error is a
// protect list that cannot be read or parsed, or pods and nodes that
// cannot be listed.
func (g *Guard) Refusals(ctx context.Context, kube kubernetes.Interface, params map[string]any) ([]Refusal, error) {
	ns, name, selector := str(params, "namespace"), str(params, "name"), str(params, "selector")
	nodes := append(strs(params, "nodes"), str(params, "node"))
	nodes = slices.DeleteFunc(nodes, func(n string) bool { return n == "" })
	if ns == "" && len(nodes) == 0 {
		return nil, nil // no target the guard knows of
	}
	if kube == nil {
		return nil, fmt.Errorf("no Kubernetes client to read %s with", ConfigMap)
	}
	list, err := g.read(ctx, kube)
	if err != nil {
		return nil, err
	}
	var out []Refusal
	if ns != "" {
		if r, ok := list.namespaceRule(ns); ok {
			target := "namespace " + ns
			if name != "" {
				target = "pod " + ns + "/" + name
			}
			out = append(out, Refusal{Rule: r, Target: target})
		} else if len(list.selectors) > 0 && (name != "" || selector != "") {
			pods, err := targetPods(ctx, kube, ns, name, selector)
			if err != nil {
				return nil, err
			}
			out = append(out, list.podRefusals(pods)...)
		}
	}
	for _, n := range nodes {
		r, err := g.nodeRefusal(ctx, kube, n)
		if err != nil {
			return nil, err
		}
		if r != nil {
			out = append(out, *r)
		}
	}
	return out, nil
}

// list is the protect list, built-ins included.
type list struct {
	kir, falco string
	namespaces []string
	selectors  []selector
}

type selector struct {
	source string
	sel    labels.Selector
}

func (l *list) namespaceRule(ns string) (string, bool) {
	switch {
	case ns == l.kir:
		return RuleKir, true
	case ns == metav1.NamespaceSystem:
		return RuleKubeSystem, true
	case ns == l.falco:
		return RuleFalco, true
	case slices.Contains(l.namespaces, ns):
		return RuleNamespace, true
	}
	return "", false
}

func (l *list) podRefusals(pods []corev1.Pod) []Refusal {
	var out []Refusal
	for _, p := range pods {
		for _, s := range l.selectors {
			if s.sel.Matches(labels.Set(p.Labels)) {
				out = append(out, Refusal{Rule: RulePodSelector, Target: "pod " + p.Namespace + "/" + p.Name, Detail: s.source})
				break
			}
		}
	}
	return out
}

// read reads the protect list: the built-ins and the ConfigMap's.
func (g *Guard) read(ctx context.Context, kube kubernetes.Interface) (*list, error) {
	l := &list{kir: g.namespace(), falco: DefaultFalcoNamespace}
	cm, err := kube.CoreV1().ConfigMaps(l.kir).Get(ctx, ConfigMap, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return l, nil
	case err != nil:
		return nil, fmt.Errorf("reading the protect list %s/%s: %w", l.kir, ConfigMap, err)
	}
	where := l.kir + "/" + ConfigMap
	if f := strings.TrimSpace(cm.Data[KeyFalcoNamespace]); f != "" {
		l.falco = f
	}
	l.namespaces = lines(cm.Data[KeyNamespaces])
	for i, src := range lines(cm.Data[KeyPodSelectors]) {
		sel, err := labels.Parse(src)
		if err != nil {
			return nil, fmt.Errorf("%s: %s, selector %d %q: %w", where, KeyPodSelectors, i+1, src, err)
		}
		if sel.Empty() {
			return nil, fmt.Errorf("%s: %s, selector %d %q selects every pod", where, KeyPodSelectors, i+1, src)
		}
		l.selectors = append(l.selectors, selector{source: src, sel: sel})
	}
	return l, nil
}

// lines are s's lines, trimmed, without blank lines and # comments.
func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

// targetPods are the pods a run names: one by name (none if it does not
// exist: the run will say so), or those selector matches now.
func targetPods(ctx context.Context, kube kubernetes.Interface, ns, name, selector string) ([]corev1.Pod, error) {
	if name != "" {
		p, err := kube.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading pod %s/%s: %w", ns, name, err)
		}
		return []corev1.Pod{*p}, nil
	}
	pods, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, fmt.Errorf("listing pods %s in %s: %w", selector, ns, err)
	}
	return pods.Items, nil
}

// nodeRefusal says why node is protected, if it is.
func (g *Guard) nodeRefusal(ctx context.Context, kube kubernetes.Interface, node string) (*Refusal, error) {
	target := "node " + node
	n, err := kube.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil // the run will say so
	case err != nil:
		return nil, fmt.Errorf("reading node %s: %w", node, err)
	}
	if _, ok := n.Labels[LabelControlPlane]; ok {
		return &Refusal{Rule: RuleControlPlane, Target: target}, nil
	}
	on := fields.OneTermEqualSelector("spec.nodeName", node).String()
	for _, q := range []struct{ ns, selector string }{{g.namespace(), ""}, {metav1.NamespaceSystem, "tier=control-plane"}} {
		pods, err := kube.CoreV1().Pods(q.ns).List(ctx, metav1.ListOptions{FieldSelector: on, LabelSelector: q.selector})
		if err != nil {
			return nil, fmt.Errorf("listing the pods of %s on node %s: %w", q.ns, node, err)
		}
		for _, p := range pods.Items {
			if p.Spec.NodeName == node { // as selected; checked all the same
				return &Refusal{Rule: RuleNodeOfKir, Target: target, Detail: "runs pod " + p.Namespace + "/" + p.Name}, nil
			}
		}
	}
	return nil, nil
}

// str is params[k] as a string. Parameter types may be named string types
// (a namespace, a selector): their kind is what counts.
func str(params map[string]any, k string) string {
	v := reflect.ValueOf(params[k])
	if v.Kind() != reflect.String {
		return ""
	}
	return strings.TrimSpace(v.String())
}

// strs is params[k] as strings: a slice of a string kind, or of any.
func strs(params map[string]any, k string) []string {
	v := reflect.ValueOf(params[k])
	if v.Kind() != reflect.Slice {
		return nil
	}
	var out []string
	for i := range v.Len() {
		e := v.Index(i)
		if e.Kind() == reflect.Interface {
			e = e.Elem()
		}
		if e.Kind() == reflect.String {
			out = append(out, e.String())
		}
	}
	return out
}
