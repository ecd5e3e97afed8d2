package kubetest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"testing"
	"time"
)

// RenderDOM renders an HTML file in headless Chromium and returns the DOM
// it built: what a person opening the file sees, as text. make testdeps
// installs Chromium (tools/debs.sh).
func RenderDOM(t testing.TB, file string) []byte {
	t.Helper()
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not on PATH: this test renders an HTML report in headless Chromium. " +
			"make test installs it (make testdeps: internal/kubetest/tools/debs.sh).")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu",
		"--user-data-dir="+t.TempDir(), "--dump-dom", "file://"+file)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	dom, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.Bytes())
	}
	return dom
}
