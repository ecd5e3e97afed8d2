package cli

import (
	"crypto/rand"
	"encoding/hex"
	"time"

	"github.com/urfave/cli/v2"

	"kir.dev/kir/action"
	"kir.dev/kir/internal/kube"
)

// session is what a command that runs actions works with: the action
// environment, the output format and, when it talks to a cluster, the
// client.
type session struct {
	client *kube.Client // nil offline
	env    action.Env
	format string
}

// incident says where a command's incident id comes from when --incident
// does not give one.
type incident int

const (
	// newIncident: the command opens an incident (containment,
	// collection), so an id is generated.
	newIncident incident = iota
	// givenIncident: the command belongs to an incident already recorded
	// elsewhere (a release, on the objects it releases; a rollback, in
	// its rotation's run), so none is generated.
	givenIncident
)

// offline is the session of a command that needs no cluster, such as the
// rotation of a secret in Vault: the output format, dry-run mode and
// incident, and no client.
func offline(c *cli.Context, w *writeOptions, inc incident) (*session, error) {
	if err := w.output.check(); err != nil {
		return nil, err
	}
	dry, err := w.dryRunMode()
	if err != nil {
		return nil, err
	}
	id := w.incident
	if id == "" && inc == newIncident {
		id = newIncidentID(time.Now())
	}
	return &session{
		format: w.output.format,
		env:    action.Env{DryRun: dry, Incident: id, Version: Version, Progress: c.App.ErrWriter},
	}, nil
}

// online is the session of a command that talks to a cluster. It asks
// the API server who kir acts as; that first request also tells an
// unreachable server or bad credentials apart before anything is changed.
func online(c *cli.Context, k *kubeOptions, w *writeOptions, inc incident) (*session, error) {
	s, err := offline(c, w, inc)
	if err != nil {
		return nil, err
	}
	kc, err := kube.New(k.options())
	if err != nil {
		return nil, usageError{err}
	}
	who, err := kube.WhoAmI(c.Context, kc.Interface)
	if err != nil {
		return nil, err
	}
	s.client = kc
	s.env.Kube, s.env.Actor, s.env.Cluster, s.env.ClusterCA = kc.Interface, who.Username, kc.Config.Host, kc.CA()
	return s, nil
}

// namespace is ns, or the kubeconfig context's namespace when ns is "".
func (s *session) namespace(ns string) string {
	if ns == "" && s.client != nil {
		return s.client.Namespace
	}
	return ns
}

// newIncidentID makes an id that sorts by time and is unique enough to
// name one incident: inc-20261125-204512-3f9a1c.
func newIncidentID(now time.Time) string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return "inc-" + now.UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b)
}
