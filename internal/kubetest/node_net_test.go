package kubetest

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// A filter table as iptables-save prints it with kubelet's canary and
// kube-router's chains beside rules of someone else's.
const savedFilter = `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:KUBE-KUBELET-CANARY - [0:0]
:KUBE-NWPLCY-DEFAULT - [0:0]
:KUBE-POD-FW-ABC - [0:0]
:KUBE-ROUTER-FORWARD - [0:0]
:OTHER - [0:0]
-A INPUT -s 192.0.2.9/32 -j DROP
-A FORWARD -m comment --comment "kube-router netpol - XYZ" -j KUBE-ROUTER-FORWARD
-A FORWARD -j OTHER
-A KUBE-POD-FW-ABC -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A KUBE-ROUTER-FORWARD -d 10.88.0.2/32 -g KUBE-POD-FW-ABC
-A OTHER -j ACCEPT
COMMIT
`

func TestWithoutChains(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		prefixes []string
		want     string
		changed  bool
	}{
		{"kube-router's", kubeRouterChains, `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:KUBE-KUBELET-CANARY - [0:0]
:OTHER - [0:0]
-A INPUT -s 192.0.2.9/32 -j DROP
-A FORWARD -j OTHER
-A OTHER -j ACCEPT
COMMIT
`, true},
		{"every KUBE-", []string{"KUBE-"}, `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OTHER - [0:0]
-A INPUT -s 192.0.2.9/32 -j DROP
-A FORWARD -j OTHER
-A OTHER -j ACCEPT
COMMIT
`, true},
		{"none", []string{"NOPE-"}, savedFilter, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, changed := withoutChains(savedFilter, tt.prefixes)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("withoutChains (-want +got):\n%s", diff)
			}
			if changed != tt.changed {
				t.Errorf("changed = %v, want %v", changed, tt.changed)
			}
		})
	}
}

func TestUnescapeMountPoint(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		`/var/lib/kubelet/pods/x/volumes`: "/var/lib/kubelet/pods/x/volumes",
		`/run/a\040b`:                     "/run/a b",
		`/run/tab\011x\134`:               "/run/tab\tx\\",
	} {
		if got := unescapeMountPoint(in); got != want {
			t.Errorf("unescapeMountPoint(%q) = %q, want %q", in, got, want)
		}
	}
}
