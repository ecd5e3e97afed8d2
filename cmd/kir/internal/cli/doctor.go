package cli

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"
	authzv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"kir.dev/kir/action"
	"kir.dev/kir/internal/kube"
)

// Diagnosis is the result of kir doctor (-o json).
type Diagnosis struct {
	Server  string         `json:"server"`
	Version string         `json:"version"`
	User    string         `json:"user"`
	Groups  []string       `json:"groups"`
	Actions []ActionAccess `json:"actions"`
}

// ActionAccess says whether kir may run one action here.
type ActionAccess struct {
	Action  string   `json:"action"`
	Allowed bool     `json:"allowed"`
	Missing []string `json:"missing,omitempty"` // "verb resource.group"
}

// doctorOptions are kir doctor's flags.
type doctorOptions struct {
	kube      kubeOptions
	namespace string
	output    outputOptions
}

func doctorCommand() *cli.Command {
	o := &doctorOptions{}
	return &cli.Command{
		Name:  "doctor",
		Usage: "can kir act here? API server reachable, who kir acts as, and the RBAC each action needs",
		Flags: flagsOf(o.kube.flags(), []cli.Flag{
			&cli.StringFlag{Name: flagNamespace, Aliases: []string{"n"}, Usage: "check namespaced permissions in this namespace only (default: all namespaces)", Destination: &o.namespace},
			o.output.flag(),
		}),
		Action: o.run,
	}
}

func (o *doctorOptions) run(c *cli.Context) error {
	kc, err := kube.New(o.kube.options())
	if err != nil {
		return usageError{err}
	}
	d, err := diagnose(c.Context, kc, o.namespace)
	if err != nil {
		return err
	}
	if err := printDiagnosis(c.App.Writer, o.output.format, d); err != nil {
		return err
	}
	// Rotation is opt-in (the kir-rotate role): doctor reports it, and
	// fails only for what every response needs.
	for _, a := range d.Actions {
		if !a.Allowed && !strings.HasPrefix(a.Action, "rotate") {
			return forbiddenError{fmt.Errorf("kir may not run every action here (see above)")}
		}
	}
	return nil
}

// forbiddenError maps to ExitForbidden.
type forbiddenError struct{ err error }

func (e forbiddenError) Error() string { return e.err.Error() }
func (e forbiddenError) Unwrap() error { return e.err }

func diagnose(ctx context.Context, kc *kube.Client, ns string) (Diagnosis, error) {
	d := Diagnosis{Server: kc.Config.Host}
	v, err := kc.Interface.Discovery().ServerVersion()
	if err != nil {
		return d, fmt.Errorf("reaching the API server at %s: %w", kc.Config.Host, err)
	}
	d.Version = v.GitVersion
	who, err := kube.WhoAmI(ctx, kc.Interface)
	if err != nil {
		return d, err
	}
	d.User, d.Groups = who.Username, who.Groups
	reg := registry()
	cache := map[string]bool{}
	for _, name := range reg.Names() {
		a, _ := reg.Get(name)
		acc := ActionAccess{Action: name, Allowed: true}
		missing, err := missingRules(ctx, kc.Interface, a.Spec(), ns, cache)
		if err != nil {
			return d, err
		}
		if len(missing) > 0 {
			acc.Allowed, acc.Missing = false, missing
		}
		d.Actions = append(d.Actions, acc)
	}
	return d, nil
}

// missingRules asks the API server, one SelfSubjectAccessReview per verb
// and resource, which of the spec's rules kir lacks.
func missingRules(ctx context.Context, c kubernetes.Interface, spec action.Spec, ns string, cache map[string]bool) ([]string, error) {
	var missing []string
	for _, rule := range spec.Rules {
		for _, g := range rule.APIGroups {
			for _, res := range rule.Resources {
				resource, sub, _ := strings.Cut(res, "/")
				for _, verb := range rule.Verbs {
					key := verb + " " + res + "." + g
					allowed, seen := cache[key]
					if !seen {
						r, err := c.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authzv1.SelfSubjectAccessReview{
							Spec: authzv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authzv1.ResourceAttributes{
								Namespace: ns, Verb: verb, Group: g, Resource: resource, Subresource: sub,
							}},
						}, metav1.CreateOptions{})
						if err != nil {
							return nil, fmt.Errorf("checking %q: %w", key, err)
						}
						allowed = r.Status.Allowed
						cache[key] = allowed
					}
					if !allowed {
						missing = append(missing, strings.TrimSuffix(key, "."))
					}
				}
			}
		}
	}
	return missing, nil
}

func printDiagnosis(w io.Writer, format string, d Diagnosis) error {
	if format == "json" || format == "yaml" {
		return printStructured(w, format, d)
	}
	p := &textPrinter{w: w}
	p.line("API server  %s (%s): reachable", d.Server, d.Version)
	p.line("acting as   %s (groups: %s)", d.User, strings.Join(d.Groups, ", "))
	for _, a := range d.Actions {
		if a.Allowed {
			p.line("  ok       %s", a.Action)
		} else {
			p.line("  MISSING  %s: %s", a.Action, strings.Join(a.Missing, "; "))
		}
	}
	return p.err
}
