package collect

import (
	"bytes"
	"context"
	"fmt"
	"io"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"kir.dev/kir/internal/kube"
)

// container is one container of a pod, of any kind.
type container struct {
	name, image string
	// kind is init, regular or ephemeral.
	kind string
}

// containers lists every container of pod: init, regular, then ephemeral.
func containers(pod *corev1.Pod) []container {
	var out []container
	for _, c := range pod.Spec.InitContainers {
		out = append(out, container{name: c.Name, image: c.Image, kind: "init"})
	}
	for _, c := range pod.Spec.Containers {
		out = append(out, container{name: c.Name, image: c.Image, kind: "regular"})
	}
	for _, c := range pod.Spec.EphemeralContainers {
		out = append(out, container{name: c.Name, image: c.Image, kind: "ephemeral"})
	}
	return out
}

// statuses maps each container's name to its status, of any kind.
func statuses(pod *corev1.Pod) map[string]corev1.ContainerStatus {
	m := map[string]corev1.ContainerStatus{}
	for _, list := range [][]corev1.ContainerStatus{pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses, pod.Status.EphemeralContainerStatuses} {
		for _, s := range list {
			m[s.Name] = s
		}
	}
	return m
}

// logs writes the current and the previous log of every container.
func (r *run) logs(ctx context.Context) {
	for _, c := range containers(r.pod) {
		r.containerLog(ctx, c.name, false)
		r.containerLog(ctx, c.name, true)
	}
}

// containerLog writes logs/<container>.log, or .previous.log: the log of
// the container's instance before its last restart.
//
// It asks the kubelet for one byte more than the limit, to know whether
// the log was cut, and holds at most that much in memory: the Source
// saying whether the file is whole must be given before the file is
// written.
func (r *run) containerLog(ctx context.Context, name string, previous bool) {
	ctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
	defer cancel()
	file, what := "logs/"+name+".log", "log"
	if previous {
		file, what = "logs/"+name+".previous.log", "previous log"
	}
	limit := r.o.LogLimitBytes
	ask := limit + 1
	src := r.source("log")
	src.Container = name
	ctx, auditID := kube.CaptureAuditID(ctx)
	stream, err := r.client.CoreV1().Pods(r.namespace).GetLogs(r.name, &corev1.PodLogOptions{
		Container:  name,
		Previous:   previous,
		Timestamps: true,
		LimitBytes: &ask,
	}).Stream(ctx)
	if err != nil {
		// The kubelet answers 400 for a log that does not exist: a
		// container that never restarted has no previous log ("previous
		// terminated container … not found"), one still waiting to start
		// has none at all.
		if apierrors.IsBadRequest(err) || apierrors.IsNotFound(err) {
			r.note("logs", "container %s has no %s: %v", name, what, err)
			return
		}
		r.fail("logs", fmt.Errorf("reading the %s of container %s: %w", what, name, err))
		return
	}
	defer stream.Close()
	body, err := io.ReadAll(io.LimitReader(stream, ask))
	if err != nil {
		r.fail("logs", fmt.Errorf("reading the %s of container %s: %w", what, name, err))
		return
	}
	src.AuditID = auditID()
	if int64(len(body)) > limit {
		body = body[:limit]
		src.Truncated = true
		src.Note = fmt.Sprintf("cut after its first %d bytes (log limit); the log on the node is longer", limit)
	}
	if _, err := r.put(file, bytes.NewReader(body), src); err != nil {
		r.fail("logs", err)
		return
	}
	if src.Truncated {
		r.note("logs", "the %s of container %s was %s", what, name, src.Note)
	}
}
