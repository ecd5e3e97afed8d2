package collect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/rest"

	"kir.dev/kir/evidence"
	"kir.dev/kir/internal/kube"
)

// Checkpoint is a checkpoint the kubelet made of a running container
// (kubelet checkpoint API, a runtime with CRI checkpoint support). The
// archive holds the container's memory and stays on the node, at Paths;
// checkpoint/<container>.json records where, marked Sensitive.
type Checkpoint struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Node       string `json:"node"`
	Namespace  string `json:"namespace"`
	Pod        string `json:"pod"`
	UID        string `json:"uid"`
	Container  string `json:"container"`
	// Paths are the archives on the node, as the kubelet reports them.
	Paths []string `json:"paths"`
	// Sensitive is always true: an auditor must handle process memory
	// with care.
	Sensitive bool `json:"sensitive"`
}

// checkpointResponse is the kubelet's answer to a checkpoint request.
type checkpointResponse struct {
	Items []string `json:"items"`
}

// checkpoints asks the kubelet, through the API server's node proxy, to
// checkpoint every running container.
func (r *run) checkpoints(ctx context.Context) {
	node := r.pod.Spec.NodeName
	if node == "" {
		r.note("checkpoint", "the pod is not scheduled: nothing to checkpoint")
		return
	}
	rc := r.client.CoreV1().RESTClient()
	if c, ok := rc.(*rest.RESTClient); rc == nil || (ok && c == nil) {
		r.note("checkpoint", "this Kubernetes client cannot reach the node proxy")
		return
	}
	running := 0
	st := statuses(r.pod)
	for _, c := range containers(r.pod) {
		if s, ok := st[c.name]; !ok || s.State.Running == nil {
			continue
		}
		running++
		r.checkpoint(ctx, rc, node, c.name)
	}
	if running == 0 {
		r.note("checkpoint", "no container is running: nothing to checkpoint")
	}
}

func (r *run) checkpoint(ctx context.Context, rc rest.Interface, node, container string) {
	ctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
	defer cancel()
	src := r.source("checkpoint")
	src.Container, src.Sensitive = container, true
	ctx, auditID := kube.CaptureAuditID(ctx)
	res := rc.Post().
		AbsPath("/api/v1/nodes", node, "proxy", "checkpoint", r.namespace, r.name, container).
		Param("timeout", strconv.Itoa(int(r.o.Timeout.Seconds()))).
		Do(ctx)
	var code int
	res.StatusCode(&code)
	body, err := res.Raw()
	if status, ok := err.(apierrors.APIStatus); ok && status.Status().Code != 0 {
		code = int(status.Status().Code)
	}
	if err != nil {
		err = fmt.Errorf("HTTP %d: %w%s", code, err, bodySnippet(body))
		// RBAC, authentication and our own deadline are failures; any
		// other answer means the kubelet (feature gate off) or the
		// runtime (no CRI checkpoint) cannot.
		if apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			r.fail("checkpoint", fmt.Errorf("checkpointing container %s on node %s: %w", container, node, err))
			return
		}
		r.note("checkpoint", "node %s cannot checkpoint container %s: %v", node, container, err)
		return
	}
	var resp checkpointResponse
	if err := json.Unmarshal(body, &resp); err != nil || len(resp.Items) == 0 {
		r.fail("checkpoint", fmt.Errorf("checkpointing container %s on node %s: the kubelet's answer names no archive (%d bytes)", container, node, len(body)))
		return
	}
	cp := Checkpoint{
		APIVersion: "kir.dev/v1alpha1", Kind: "Checkpoint",
		Node: node, Namespace: r.namespace, Pod: r.name, UID: string(r.pod.UID), Container: container,
		Paths: resp.Items, Sensitive: true,
	}
	src.AuditID = auditID()
	src.Note = "the archive stays on node " + node + " and holds the container's memory"
	if _, err := r.putJSON("checkpoint/"+container+".json", cp, src); err != nil {
		r.fail("checkpoint", err)
		return
	}
	if err := r.o.Sink.Custody(evidence.Entry{Action: "collect", Detail: cp}); err != nil {
		r.fail("checkpoint", fmt.Errorf("recording the checkpoint of container %s in custody: %w", container, err))
	}
	r.mu.Lock()
	r.res.Checkpoints = append(r.res.Checkpoints, cp)
	r.mu.Unlock()
}

// bodySnippet is the start of a kubelet's error answer, for a note: the
// API server's error for a non-Status body says nothing of it.
func bodySnippet(b []byte) string {
	const max = 200
	s := strings.TrimSpace(strings.ToValidUTF8(string(b), "?"))
	if s == "" {
		return ""
	}
	if len(s) > max {
		s = s[:max] + "…"
	}
	return fmt.Sprintf(" (%q)", s)
}
