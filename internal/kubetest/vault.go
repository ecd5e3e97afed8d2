package kubetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
)

var sharedVault struct {
	once sync.Once
	v    *Vault
	err  error
}

// SharedVault returns the Vault server this test process shares, started
// by the first test that asks for it; Main stops it. Tests give their
// secrets paths of their own.
func SharedVault(t testing.TB) *Vault {
	t.Helper()
	sharedVault.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		sharedVault.v, sharedVault.err = StartVault(ctx)
	})
	if sharedVault.err != nil {
		t.Fatalf("starting Vault: %v", sharedVault.err)
	}
	return sharedVault.v
}

// stopSharedVault stops SharedVault's server if a test started it.
func stopSharedVault() {
	if sharedVault.v != nil {
		sharedVault.v.Stop()
	}
}

// Vault is a real Vault server in dev mode (in memory, unsealed, KV v2 at
// secret/), on a loopback port, with a random root token.
type Vault struct {
	// Addr is its URL, VAULT_ADDR.
	Addr string
	// Token is the root token, VAULT_TOKEN.
	Token string

	dir string
	l   *launcher
	p   *process
}

// StartVault starts the vault binary built by tools/build.sh and waits
// until it is healthy (under a second).
func StartVault(ctx context.Context) (*Vault, error) {
	bins, err := findBinaries("vault")
	if err != nil {
		return nil, err
	}
	dir, err := makeDir()
	if err != nil {
		return nil, err
	}
	ps, err := freePorts(1)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	v := &Vault{Addr: fmt.Sprintf("http://127.0.0.1:%d", ps[0]), Token: "root-" + hex.EncodeToString(b), dir: dir, l: newLauncher()}
	v.p, err = startProcess(v.l, dir, "vault", bins["vault"], []string{
		"server", "-dev", "-dev-root-token-id=" + v.Token,
		fmt.Sprintf("-dev-listen-address=127.0.0.1:%d", ps[0]), "-dev-no-store-token",
	}, nil)
	if err != nil {
		v.l.close()
		os.RemoveAll(dir)
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		if v.p.exited() {
			out, _ := tail(v.p.logPath, 20)
			v.Stop()
			return nil, fmt.Errorf("vault %v:\n%s", v.p.exitError(), out)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, v.Addr+"/v1/sys/health", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return v, nil
			}
		}
		select {
		case <-ctx.Done():
			v.Stop()
			return nil, fmt.Errorf("vault not healthy: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Env returns the environment variables that point a Vault client at it.
func (v *Vault) Env() []string {
	return []string{"VAULT_ADDR=" + v.Addr, "VAULT_TOKEN=" + v.Token}
}

// Stop stops the server and removes its directory.
func (v *Vault) Stop() {
	stopProcesses([]*process{v.p}, 5*time.Second)
	v.l.close()
	if !keep() {
		os.RemoveAll(v.dir)
	}
}

// Client returns a client of v with its root token, for tests to set up
// and read what kir rotates.
func (v *Vault) Client(t testing.TB) *vault.Client {
	t.Helper()
	cfg := vault.DefaultConfig()
	cfg.Address = v.Addr
	c, err := vault.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(v.Token)
	return c
}
