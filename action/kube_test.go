package action

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

type kubeParams struct {
	Namespace Namespace  `json:"namespace" kir:"required"`
	Name      PodName    `json:"name,omitempty"`
	Selector  Selector   `json:"selector,omitempty"`
	Node      NodeName   `json:"node,omitempty"`
	Pods      []PodName  `json:"pods,omitempty"`
	Nodes     []NodeName `json:"nodes,omitempty"`
}

func (kubeParams) Validate() error { return nil }

func TestKubeTypeNames(t *testing.T) {
	t.Parallel()
	var got []string
	for _, p := range ParamsOf[kubeParams]() {
		got = append(got, p.Type)
	}
	want := []string{"namespace", "pod name", "selector", "node name", "[]pod name", "[]node name"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("types (-want +got):\n%s", diff)
	}
}

// TestDecodeKubeTypes feeds Decode what an attacker's alert could put in
// a parameter: each bad value is refused, naming the parameter and the
// value, and the good ones keep their JSON shape (strings).
func TestDecodeKubeTypes(t *testing.T) {
	t.Parallel()
	bad := []struct {
		name string
		in   Params
		want string // in the error
	}{
		{"blank selector", Params{"namespace": "shop", "selector": " "}, `parameter "selector": " " is not a label selector: it is empty`},
		{"tab selector", Params{"namespace": "shop", "selector": "\t\n"}, `parameter "selector": "\t\n" is not a label selector: it is empty`},
		{"comma selector", Params{"namespace": "shop", "selector": ","}, `parameter "selector": "," is not a label selector`},
		{"unparsable selector", Params{"namespace": "shop", "selector": "app in (web"}, `parameter "selector": "app in (web" is not a label selector: unable to parse`},
		{"selector not a string", Params{"namespace": "shop", "selector": 5}, `parameter "selector": want a selector (a string), got 5`},
		{"namespace with a space", Params{"namespace": "kube system"}, `parameter "namespace": "kube system" is not a namespace: a lowercase RFC 1123 label`},
		{"namespace too long", Params{"namespace": strings.Repeat("a", 64)}, `is not a namespace: must be no more than 63 characters`},
		{"namespace with a dot", Params{"namespace": "a.b"}, `parameter "namespace": "a.b" is not a namespace`},
		{"blank namespace", Params{"namespace": " "}, `parameter "namespace": " " is not a namespace`},
		{"pod path", Params{"namespace": "shop", "name": "../web"}, `parameter "name": "../web" is not a pod name`},
		{"pod upper case", Params{"namespace": "shop", "name": "Web"}, `parameter "name": "Web" is not a pod name`},
		{"node", Params{"namespace": "shop", "node": "-n1"}, `parameter "node": "-n1" is not a node name`},
		{"one pod of a list", Params{"namespace": "shop", "pods": []any{"web-1", "web 2"}}, `parameter "pods": "web 2" is not a pod name`},
		{"one node of a list", Params{"namespace": "shop", "nodes": []any{"n_1"}}, `parameter "nodes": "n_1" is not a node name`},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Decode[kubeParams](tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
	good := Params{"namespace": "shop", "name": "web-1.x", "selector": "app=web,tier in (a,b)", "node": "ip-10-0-0-1.ec2.internal", "pods": []any{"a", "b"}}
	p, err := Decode[kubeParams](good)
	if err != nil {
		t.Fatal(err)
	}
	want := kubeParams{Namespace: "shop", Name: "web-1.x", Selector: "app=web,tier in (a,b)", Node: "ip-10-0-0-1.ec2.internal", Pods: []PodName{"a", "b"}}
	if diff := cmp.Diff(want, p); diff != "" {
		t.Errorf("decoded (-want +got):\n%s", diff)
	}
	// A journal written before these types holds the same strings.
	b, _ := json.Marshal(Encode(p))
	if got := string(b); got != `{"name":"web-1.x","namespace":"shop","node":"ip-10-0-0-1.ec2.internal","pods":["a","b"],"selector":"app=web,tier in (a,b)"}` {
		t.Errorf("encoded %s", got)
	}
	// Absent and empty optional values are no value.
	if _, err := Decode[kubeParams](Params{"namespace": "shop", "selector": "", "name": ""}); err != nil {
		t.Errorf("empty optional values: %v", err)
	}
	if _, err := Decode[kubeParams](Params{"namespace": ""}); err == nil || !strings.Contains(err.Error(), `parameter "namespace" is required`) {
		t.Errorf("empty required namespace: %v", err)
	}
}

func TestCheckParam(t *testing.T) {
	t.Parallel()
	if err := CheckParam("selector", Selector(" ")); err == nil || err.Error() != `parameter "selector": " " is not a label selector: it is empty, and would select every pod` {
		t.Errorf("got %v", err)
	}
	for _, c := range []Checker{Selector(""), Namespace(""), PodName(""), NodeName(""), Selector("!kir.dev/quarantine"), Namespace("kube-system"), PodName("a.b-c"), NodeName("n1")} {
		if err := c.Check(); err != nil {
			t.Errorf("%#v: %v", c, err)
		}
	}
}
