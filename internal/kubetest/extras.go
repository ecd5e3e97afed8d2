package kubetest

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
)

// PodLogs is what kwok serves as the logs of some containers, in the CRI
// log format a kubelet reads from disk: one
// "<RFC 3339 time> stdout|stderr F <text>" per line.
type PodLogs struct {
	// Containers are the container names it serves; none: every container.
	Containers []string
	// Log is the current instance's log.
	Log string
	// Previous is the previous instance's (?previous=true); empty: none.
	Previous string
}

// auditPolicy records every request's metadata: who did what to which
// object, and the request's Audit-Id.
const auditPolicy = "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n"

// auditFlags writes the audit policy into c.Dir, sets c.AuditLog and
// returns flags with the API server's audit flags added.
func (c *Cluster) auditFlags(flags []string) ([]string, error) {
	policy := filepath.Join(c.Dir, "audit-policy.yaml")
	if err := os.WriteFile(policy, []byte(auditPolicy), 0o600); err != nil {
		return nil, fmt.Errorf("writing the audit policy: %w", err)
	}
	c.AuditLog = filepath.Join(c.Dir, "audit.log")
	return append(slices.Clip(flags), "--audit-policy-file="+policy, "--audit-log-path="+c.AuditLog), nil
}

// extraKwokConfig returns the documents opts adds to kwok's configuration:
// ExtraKwokConfig, the image-ID stages, and a ClusterLogs serving PodLogs
// from files it writes into dir.
func extraKwokConfig(dir string, opts Options) ([][]byte, error) {
	docs := slices.Clone(opts.ExtraKwokConfig)
	if opts.ImageIDs {
		stages, err := ImageIDStages()
		if err != nil {
			return nil, err
		}
		docs = append(docs, stages...)
	}
	if len(opts.PodLogs) == 0 {
		return docs, nil
	}
	logs := []byte("apiVersion: kwok.x-k8s.io/v1alpha1\nkind: ClusterLogs\nmetadata:\n  name: kubetest\nspec:\n  logs:\n")
	for i, l := range opts.PodLogs {
		current := filepath.Join(dir, fmt.Sprintf("pod-logs-%d.log", i))
		if err := os.WriteFile(current, []byte(l.Log), 0o600); err != nil {
			return nil, fmt.Errorf("writing pod logs: %w", err)
		}
		logs = fmt.Appendf(logs, "  - logsFile: %q\n", current)
		if len(l.Containers) > 0 {
			logs = fmt.Appendf(logs, "    containers: [%s]\n", quoteAll(l.Containers))
		}
		if l.Previous != "" {
			previous := filepath.Join(dir, fmt.Sprintf("pod-logs-%d.previous.log", i))
			if err := os.WriteFile(previous, []byte(l.Previous), 0o600); err != nil {
				return nil, fmt.Errorf("writing pod logs: %w", err)
			}
			logs = fmt.Appendf(logs, "    previousLogsFile: %q\n", previous)
		}
	}
	return append(docs, logs), nil
}

func quoteAll(names []string) string {
	var out []byte
	for i, n := range names {
		if i > 0 {
			out = append(out, ", "...)
		}
		out = fmt.Appendf(out, "%q", n)
	}
	return string(out)
}
