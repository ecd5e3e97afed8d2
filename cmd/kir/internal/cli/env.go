package cli

import (
	"fmt"
	"os"

	"kir.dev/kir/action"
	"kir.dev/kir/cmd/kir/internal/catalog"
	"kir.dev/kir/rotate"
)

// EnvVar is an environment variable kir reads, or that the libraries and
// tests it is built with read on its behalf.
type EnvVar struct {
	// Name is the variable, e.g. KIR_STATE_DIR; a trailing * stands for
	// a family (AWS_*), which only documents.
	Name string
	// Meaning says what it sets, and for which command; `code` spans are
	// Markdown.
	Meaning string
	// Sensitive is true when the value itself is a credential: kir never
	// prints, logs or journals it.
	Sensitive bool
	// Note says more about what is sensitive, such as the file a path
	// names.
	Note string
}

// environment is every variable kir's command line reads (through a
// flag's EnvVars, or getenv) and those read for it by its libraries and
// tests: the one list the README's table is generated from. kir's own
// configuration (the stores' too) is built from it here, and passed in.
var environment = []EnvVar{
	{Name: "KUBECONFIG", Meaning: "kubeconfig path(s), as `--kubeconfig`", Note: "the file holds credentials; kir never prints them"},
	{Name: "KIR_INCIDENT", Meaning: "incident id, as `--incident`"},
	{Name: "KIR_STATE_DIR", Meaning: "where run journals (`runs/`) and evidence bundles (`evidence/`) live, as `--state-dir`", Note: "bundles hold logs and memory: 0700"},
	{Name: "XDG_STATE_HOME", Meaning: "without `--state-dir`: the state directory is `$XDG_STATE_HOME/kir` (default `~/.local/state/kir`)"},
	{Name: "KIR_PLAYBOOKS_DIR", Meaning: "user playbooks, as `--playbooks-dir`"},
	{Name: "KIR_SIGNING_KEY", Meaning: "private key that signs evidence bundles and custody entries, as `--key`", Note: "the path only; the file is the secret"},
	{Name: "KIR_TOKEN_FILE", Meaning: "`kir serve`: file holding the bearer token, as `--token-file`", Note: "the path only"},
	{Name: "KIR_SERVE_CONFIG", Meaning: "`kir serve`, `kir falco replay`: routing rules, as `--config`"},
	{Name: "KIR_IDENTITY", Meaning: "`kir serve`: this replica's name in claims, as `--identity`"},
	{Name: "POD_NAME", Meaning: "`kir serve` in Kubernetes: its name in claims, without `--identity` or `KIR_IDENTITY`"},
	{Name: "POD_NAMESPACE", Meaning: "`kir serve` in Kubernetes: where the claim Leases live, as `--lease-namespace`; and kir's own namespace, without `--kir-namespace` or `KIR_NAMESPACE`"},
	{Name: "KIR_NAMESPACE", Meaning: "kir's own namespace, as `--kir-namespace` (default `kir-system`): never a target, and home of the `kir-protect` ConfigMap"},
	{Name: "NODE_NAME", Meaning: "`kir node agent`: the node it runs on, as `--node` (a DaemonSet sets it from `spec.nodeName`)"},
	{Name: "GOMEMLIMIT", Meaning: "`kir serve`: the Go runtime's soft memory limit, instead of kir serve's own (48 MiB)"},
	{Name: "VAULT_ADDR", Meaning: "`kir rotate`: the Vault server, read by Vault's client library as Vault's own CLI reads it"},
	{Name: "VAULT_CACERT", Meaning: "`kir rotate`: the CA that verifies the Vault server, read by Vault's client library"},
	{Name: "VAULT_NAMESPACE", Meaning: "`kir rotate`: the Vault Enterprise namespace, read by Vault's client library"},
	{Name: "VAULT_TOKEN", Meaning: "`kir rotate`: Vault token (the default login), read by Vault's client library", Sensitive: true, Note: "never printed"},
	{Name: "KIR_VAULT_AUTH", Meaning: "`kir rotate`: how to log in to Vault: `token` (default), `kubernetes` or `approle`"},
	{Name: "KIR_VAULT_AUTH_MOUNT", Meaning: "`kir rotate`: the Vault auth method's mount (default its name)"},
	{Name: "KIR_VAULT_ROLE", Meaning: "`kir rotate`, Vault Kubernetes auth: the role"},
	{Name: "KIR_VAULT_JWT_FILE", Meaning: "`kir rotate`, Vault Kubernetes auth: the ServiceAccount token file (default the pod's)", Note: "the file is a credential"},
	{Name: "KIR_VAULT_ROLE_ID", Meaning: "`kir rotate`, Vault AppRole auth: the role id"},
	{Name: "KIR_VAULT_SECRET_ID_FILE", Meaning: "`kir rotate`, Vault AppRole auth: the file holding the secret id", Note: "the file is a credential"},
	{Name: "KIR_AWS_ENDPOINT_URL", Meaning: "`kir rotate`: a Secrets Manager-compatible server, as `--endpoint-url`"},
	{Name: "AWS_*", Meaning: "`kir rotate`: the standard AWS configuration, read by the AWS SDK (region, profile, web identity / IRSA; `AWS_ENDPOINT_URL_SECRETS_MANAGER`)", Sensitive: true, Note: "its credentials; never printed"},
	{Name: "KIR_TEST_CACHE", Meaning: "tests: where the control plane binaries are built (`~/.cache/kir-test`)"},
	{Name: "KIR_TEST_BIN", Meaning: "tests: a directory of control plane binaries to use instead of the cache's"},
	{Name: "KIR_TEST_TMPDIR", Meaning: "tests: where test clusters live (default `/dev/shm`, else the temp dir)"},
	{Name: "KIR_TEST_KEEP", Meaning: "tests: `1` keeps cluster directories for a post-mortem"},
	{Name: "KIR_TEST_PROFILING", Meaning: "tests: `1` turns the test API server's profiling on"},
	{Name: "KIR_TEST_SHOW_LOGS", Meaning: "tests: print the logs of `kir serve` processes even when their test passes"},
	{Name: "KIR_TEST_KILL_AFTER", Meaning: "tests only (kir built with `-tags kirtest`): `TYPE:STEP[#N]` makes kir SIGKILL itself after that (Nth) journal record"},
}

// Environment returns the environment table.
func Environment() []EnvVar { return append([]EnvVar(nil), environment...) }

// listed panics unless the table lists name: a variable read without a
// row is a programming error, which every test that builds the app finds.
func listed(name string) string {
	for _, v := range environment {
		if v.Name == name {
			return name
		}
	}
	panic(fmt.Sprintf("cli: environment variable %s is not in the environment table (env.go)", name))
}

// envVars are the environment variables a flag reads, each in the table.
func envVars(names ...string) []string {
	for _, n := range names {
		listed(n)
	}
	return names
}

// getenv reads an environment variable of the table.
func getenv(name string) string { return os.Getenv(listed(name)) }

// stores are the secret stores' settings, from the environment.
func stores() rotate.Stores {
	return rotate.Stores{Vault: rotate.VaultAuth{
		Method:       getenv("KIR_VAULT_AUTH"),
		Mount:        getenv("KIR_VAULT_AUTH_MOUNT"),
		Role:         getenv("KIR_VAULT_ROLE"),
		JWTFile:      getenv("KIR_VAULT_JWT_FILE"),
		RoleID:       getenv("KIR_VAULT_ROLE_ID"),
		SecretIDFile: getenv("KIR_VAULT_SECRET_ID_FILE"),
	}}
}

// registry is kir's actions, configured from the environment.
func registry() action.Registry { return catalog.Registry(stores()) }
