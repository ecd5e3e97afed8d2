package action

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	rbacv1 "k8s.io/api/rbac/v1"
)

type testParams struct {
	Namespace string   `json:"namespace" kir:"required" doc:"Namespace."`
	Name      string   `json:"name,omitempty" doc:"Name."`
	Detach    bool     `json:"detach,omitempty" doc:"Detach."`
	CIDRs     []string `json:"cidrs,omitempty" doc:"CIDRs."`
	Timeout   Duration `json:"timeout,omitempty" doc:"Timeout."`
}

func (testParams) Validate() error { return nil }

func TestParamsOf(t *testing.T) {
	t.Parallel()
	want := []Param{
		{Name: "namespace", Type: "string", Required: true, Description: "Namespace."},
		{Name: "name", Type: "string", Description: "Name."},
		{Name: "detach", Type: "bool", Description: "Detach."},
		{Name: "cidrs", Type: "[]string", Description: "CIDRs."},
		{Name: "timeout", Type: "duration", Description: "Timeout."},
	}
	if diff := cmp.Diff(want, ParamsOf[testParams]()); diff != "" {
		t.Errorf("ParamsOf (-want +got):\n%s", diff)
	}
}

func TestDecode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      Params
		want    testParams
		wantErr []string // every problem must be named
	}{
		{name: "valid", in: Params{"namespace": "shop", "name": "web", "detach": true, "cidrs": []any{"10.0.0.0/8"}, "timeout": "30s"},
			want: testParams{Namespace: "shop", Name: "web", Detach: true, CIDRs: []string{"10.0.0.0/8"}, Timeout: Duration(30e9)}},
		{name: "missing required and unknown, both reported", in: Params{"nmae": "web"},
			wantErr: []string{`parameter "namespace" is required`, `unknown parameter "nmae"`}},
		{name: "wrong type names the parameter", in: Params{"namespace": "shop", "detach": "yes"},
			wantErr: []string{`parameter "detach": want bool, got string`}},
		{name: "bad duration", in: Params{"namespace": "shop", "timeout": "soon"},
			wantErr: []string{`parameter "timeout"`, `soon`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Decode[testParams](tt.in)
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("Decode (-want +got):\n%s", diff)
				}
				return
			}
			if err == nil {
				t.Fatalf("Decode(%v) succeeded, want errors %q", tt.in, tt.wantErr)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestEncodeRoundTrips(t *testing.T) {
	t.Parallel()
	in := testParams{Namespace: "shop", CIDRs: []string{"1.2.3.4/32"}, Timeout: Duration(5e9)}
	got, err := Decode[testParams](Encode(in))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(in, got); diff != "" {
		t.Errorf("round trip (-in +out):\n%s", diff)
	}
}

func TestRegistryRejectsDuplicatesAndMergesRules(t *testing.T) {
	t.Parallel()
	pods := func(verbs ...string) []rbacv1.PolicyRule {
		return []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: verbs}}
	}
	a := Func[testParams, any]{Name: "x.a", Rules: pods("patch", "get")}
	b := Func[testParams, any]{Name: "x.b", Rules: pods("get", "list")}
	other := Func[testParams, any]{Name: "y.c", Rules: pods("delete")}
	if _, err := NewRegistry(a, a); err == nil {
		t.Error("NewRegistry accepted a duplicate name")
	}
	r, err := NewRegistry(a, b, other)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(pods("get", "list", "patch"), r.Rules("x.")); diff != "" {
		t.Errorf("Rules(x.) (-want +got):\n%s", diff)
	}
}
