package fence_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"kir.dev/kir/fence"
)

// The component builds with the base, as a site's kustomization would
// list it, and holds every object of the fence.
func TestAdmissionComponentBuilds(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "deploy")
	if err := os.CopyFS(dir, os.DirFS("../deploy")); err != nil {
		t.Fatal(err)
	}
	site := filepath.Join(dir, "site")
	if err := os.Mkdir(site, 0o755); err != nil {
		t.Fatal(err)
	}
	k := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [../base]\ncomponents: [../components/admission]\n"
	if err := os.WriteFile(filepath.Join(site, "kustomization.yaml"), []byte(k), 0o644); err != nil {
		t.Fatal(err)
	}
	rm, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), site)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rm.Resources() {
		got = append(got, r.GetKind()+"/"+r.GetName())
	}
	want := []string{"ConfigMap/" + fence.ParamsName, "ClusterRole/" + fence.CheckRole, "Role/" + fence.CheckRole}
	for _, p := range fence.Policies() {
		want = append(want, "ValidatingAdmissionPolicy/"+p.Name, "ValidatingAdmissionPolicyBinding/"+p.Name)
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("the component lacks %s (it has %v)", w, got)
		}
	}
}
