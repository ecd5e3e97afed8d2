package cli

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/urfave/cli/v2"

	"kir.dev/kir/playbooks"
)

// bindContainPod parses args as kir contain pod's flags and returns the
// parameters they give the playbook e.
func bindContainPod(t *testing.T, e *playbooks.Entry, args ...string) (map[string]any, error) {
	t.Helper()
	o := &containPodOptions{}
	var got map[string]any
	var bindErr error
	app := &cli.App{Writer: io.Discard, ErrWriter: io.Discard, DisableSliceFlagSeparator: true, Commands: []*cli.Command{{
		Name: "pod", Flags: o.flags(),
		Action: func(c *cli.Context) error {
			got, bindErr = bind(c, e, o.params("shop", c.Args().First()))
			return nil
		},
	}}}
	if err := app.Run(append([]string{"kir", "pod"}, args...)); err != nil {
		t.Fatal(err)
	}
	return got, bindErr
}

// unsetEnv clears the variables kir contain pod's flags read, for the
// test's duration.
func unsetEnv(t *testing.T, names ...string) {
	for _, n := range names {
		t.Setenv(n, "")
		os.Unsetenv(n)
	}
}

// A command gives the playbook only what the user set: the playbook's
// defaults apply to the rest, and a --no-… flag sets its parameter false.
func TestBindGivesOnlyWhatIsSet(t *testing.T) {
	unsetEnv(t, "KIR_SIGNING_KEY", "KIR_INCIDENT", "KIR_PLAYBOOKS_DIR", "KIR_STATE_DIR", "KUBECONFIG")
	lib, err := playbooks.NewLibrary(registry(), playbooks.Sources{})
	if err != nil {
		t.Fatal(err)
	}
	e, _ := lib.Get("contain-pod")
	abs, _ := filepath.Abs("ev.tar.gz")
	for _, tt := range []struct {
		name string
		args []string
		want map[string]any
	}{
		{"no flags", []string{"web"}, map[string]any{"namespace": "shop", "name": "web"}},
		{"selector", []string{"-l", "app=web"}, map[string]any{"namespace": "shop", "selector": "app=web"}},
		{"flags", []string{"--no-cordon", "--detach", "--allow-egress-cidr", "10.0.0.0/8", "--out", "ev.tar.gz", "--no-images", "web"}, map[string]any{
			"namespace": "shop", "name": "web", "cordon": false, "detach": true, "allowEgressCIDRs": []string{"10.0.0.0/8"},
			"archive": abs, "images": false,
		}},
	} {
		got, err := bindContainPod(t, e, tt.args...)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%s: params (-want +got):\n%s", tt.name, diff)
		}
	}
}

// A flag whose parameter the chosen playbook (a user's, overriding the
// built-in one) does not declare is a usage error that names the flag.
func TestBindRefusesUndeclared(t *testing.T) {
	unsetEnv(t, "KIR_SIGNING_KEY", "KIR_INCIDENT", "KIR_PLAYBOOKS_DIR", "KIR_STATE_DIR", "KUBECONFIG")
	file := filepath.Join(t.TempDir(), "contain-pod.yaml")
	pb := `apiVersion: kir.dev/v1alpha1
kind: Playbook
metadata:
  name: contain-pod
parameters:
  - name: namespace
    type: string
    required: true
  - name: name
    type: string
steps:
  - name: isolate
    action: contain.isolate-pod
    with:
      namespace: ${{ params.namespace }}
      name: ${{ params.name }}
`
	if err := os.WriteFile(file, []byte(pb), 0o600); err != nil {
		t.Fatal(err)
	}
	lib, err := playbooks.NewLibrary(registry(), playbooks.Sources{Files: []string{file}})
	if err != nil {
		t.Fatal(err)
	}
	e, _ := lib.Get("contain-pod")
	if _, err := bindContainPod(t, e, "web"); err != nil {
		t.Errorf("no flags: %v; want the override to take just its own parameters", err)
	}
	_, err = bindContainPod(t, e, "--detach", "web")
	if ExitCode(err) != ExitUsage || !strings.Contains(err.Error(), `no parameter "detach", which --detach sets`) || !strings.Contains(err.Error(), file) {
		t.Errorf("--detach with a playbook without detach: %v (exit %d); want a usage error naming the flag and the playbook's file", err, ExitCode(err))
	}
}
