package serve_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"kir.dev/kir/action"
	"kir.dev/kir/collect"
	"kir.dev/kir/contain"
	"kir.dev/kir/falco"
	"kir.dev/kir/playbooks"
	"kir.dev/kir/rotate"
)

// TestRoutedBadNamesRefused routes alerts whose k8s fields are not names
// (the alert may be forged) through the built-in routing: the match is
// made, and the contain-pod playbook then refuses its parameters, naming
// the parameter and the value, before any run starts; the isolate action
// refuses the same values when a user playbook passes them on as strings.
func TestRoutedBadNamesRefused(t *testing.T) {
	t.Parallel()
	reg, err := action.NewRegistry(slices.Concat(contain.Actions(), collect.Actions(), rotate.Actions(rotate.Stores{}))...)
	if err != nil {
		t.Fatal(err)
	}
	lib, err := playbooks.NewLibrary(reg, playbooks.Sources{})
	if err != nil {
		t.Fatal(err)
	}
	isolate, _ := reg.Get("contain.isolate-pod")
	tests := []struct {
		ns, pod string
		want    string
	}{
		{"prod", " ", `parameter "name": " " is not a pod name`},
		{" ", "web-1", `parameter "namespace": " " is not a namespace`},
		{"kube system", "web-1", `parameter "namespace": "kube system" is not a namespace`},
		{"prod", "web-1,app!=x", `parameter "name": "web-1,app!=x" is not a pod name`},
		{"prod", "../../nodes/n1", `parameter "name": "../../nodes/n1" is not a pod name`},
		{"prod", strings.Repeat("a", 300), `is not a pod name: must be no more than 253 characters`},
	}
	for _, tt := range tests {
		a := criticalAlert()
		a.Fields["k8s.ns.name"], a.Fields["k8s.pod.name"] = tt.ns, tt.pod
		matches, skipped := falco.DefaultConfig().Route(a)
		if len(matches) != 1 || len(skipped) != 0 {
			t.Fatalf("%q/%q: matches %v, skipped %v", tt.ns, tt.pod, matches, skipped)
		}
		m := matches[0]
		e, ok := lib.Get(m.Playbook)
		if !ok {
			t.Fatalf("no playbook %s", m.Playbook)
		}
		_, err := playbooks.Bind(e.Playbook, m.Params)
		if !errors.As(err, new(*playbooks.ParamError)) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q/%q: Bind = %v, want a ParamError with %q", tt.ns, tt.pod, err, tt.want)
		}
		err = isolate.Validate(action.Params{"namespace": m.Params["namespace"], "name": m.Params["name"]})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q/%q: contain.isolate-pod's Validate = %v, want %q", tt.ns, tt.pod, err, tt.want)
		}
	}
}

// criticalAlert is a Critical alert about a pod, as the built-in routing
// contains.
func criticalAlert() *falco.Alert {
	return &falco.Alert{
		Rule:     "Drop and execute new binary in container",
		Priority: falco.PriorityCritical,
		Source:   "syscall",
		Tags:     []string{"container", "mitre_persistence"},
		Fields: map[string]string{
			"k8s.ns.name":  "prod",
			"k8s.pod.name": "checkout-5d7f9c8b4-q7wlm",
		},
	}
}
