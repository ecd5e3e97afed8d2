package cli

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestReorderArgs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"flags after the name", []string{"kir", "contain", "pod", "web-7f9c", "-n", "shop"}, []string{"kir", "contain", "pod", "-n", "shop", "web-7f9c"}},
		{"flags with = stay one token", []string{"kir", "contain", "pod", "web", "--namespace=shop", "-o", "json"}, []string{"kir", "contain", "pod", "--namespace=shop", "-o", "json", "web"}},
		{"bool flags take no value", []string{"kir", "contain", "pod", "web", "--detach", "-n", "shop"}, []string{"kir", "contain", "pod", "--detach", "-n", "shop", "web"}},
		{"repeatable flags", []string{"kir", "contain", "pod", "web", "--allow-egress-cidr", "10.0.0.0/8", "--allow-egress-cidr", "1.2.3.4/32"}, []string{"kir", "contain", "pod", "--allow-egress-cidr", "10.0.0.0/8", "--allow-egress-cidr", "1.2.3.4/32", "web"}},
		{"-- ends flags", []string{"kir", "release", "pod", "-n", "shop", "--", "-weird-name"}, []string{"kir", "release", "pod", "-n", "shop", "--", "-weird-name"}},
		{"already in order", []string{"kir", "contain", "node", "--drain", "n1"}, []string{"kir", "contain", "node", "--drain", "n1"}},
		{"a value that looks like a name", []string{"kir", "contain", "pod", "-l", "app=web", "-n", "shop"}, []string{"kir", "contain", "pod", "-l", "app=web", "-n", "shop"}},
		{"unknown command left alone", []string{"kir", "frobnicate", "x", "-n", "y"}, []string{"kir", "frobnicate", "x", "-n", "y"}},
		{"help", []string{"kir", "contain", "pod", "--help"}, []string{"kir", "contain", "pod", "--help"}},
	}
	app := New(nil, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, reorderArgs(app, tt.args)); diff != "" {
				t.Errorf("reorderArgs(%q) (-want +got):\n%s", tt.args, diff)
			}
		})
	}
}
