package collect

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"path"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"kir.dev/kir/evidence"
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
// The whole stream is read, hashed and counted; a log within the limit is
// stored as it came, a longer one as its first and last bytes around a
// gap marker, with logs/<container>[.previous].log.cut.json saying what
// was left out (see logCut). The attacker's latest lines are at the end.
func (r *run) containerLog(ctx context.Context, name string, previous bool) {
	ctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
	defer cancel()
	file, what := "logs/"+name+".log", "log"
	if previous {
		file, what = "logs/"+name+".previous.log", "previous log"
	}
	src := r.source("log")
	src.Container = name
	ctx, auditID := kube.CaptureAuditID(ctx)
	stream, err := r.client.CoreV1().Pods(r.namespace).GetLogs(r.name, &corev1.PodLogOptions{
		Container:  name,
		Previous:   previous,
		Timestamps: true,
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
	ht := newHeadTail(r.o.LogLimitBytes)
	_, err = io.Copy(ht, stream)
	src.AuditID = auditID()
	if err != nil {
		err = fmt.Errorf("reading the %s of container %s: %w", what, name, err)
		r.fail("logs", err)
		if ht.n == 0 {
			return
		}
	}
	r.storeLog(file, what, src, ht, err)
}

// storeLog writes what ht kept of a log as file, and, when the log was
// longer than the limit or broke off (readErr), file.cut.json.
func (r *run) storeLog(file, what string, src evidence.Source, ht *headTail, readErr error) {
	cut := ht.cut()
	sum := hex.EncodeToString(ht.h.Sum(nil))
	body := io.MultiReader(bytes.NewReader(ht.head), ht.tail())
	src.Note = fmt.Sprintf("the whole log: %d bytes, sha256 %s", ht.n, sum)
	if cut {
		src.Truncated = true
		src.Note = fmt.Sprintf("%d bytes left out between the first %d and the last %d (log limit %d), where the file says so; the whole log: %d bytes, sha256 %s",
			ht.skipped(), len(ht.head), ht.tailLen(), r.o.LogLimitBytes, ht.n, sum)
		body = io.MultiReader(bytes.NewReader(ht.head), strings.NewReader(ht.marker(sum)), ht.tail())
	}
	if readErr != nil {
		src.Truncated = true
		src.Note = fmt.Sprintf("the stream broke after %d bytes (%v); of those: ", ht.n, readErr) + src.Note
	}
	if _, err := r.put(file, body, src); err != nil {
		r.fail("logs", err)
		return
	}
	if !cut && readErr == nil {
		return
	}
	c := logCut{
		File: path.Join(r.o.Dir, file), Container: src.Container, Bytes: ht.n, SHA256: sum,
		Complete: readErr == nil, LimitBytes: r.o.LogLimitBytes,
		HeadBytes: int64(len(ht.head)), TailBytes: int64(ht.tailLen()), SkippedBytes: ht.skipped(),
	}
	if cut {
		c.Marker = strings.TrimSpace(ht.marker(sum))
	}
	meta := src
	meta.Truncated, meta.Note = false, "what was kept of "+c.File+", and the whole log's length and hash"
	if _, err := r.putJSON(file+".cut.json", c, meta); err != nil {
		r.fail("logs", err)
		return
	}
	r.note("logs", "the %s of container %s: %s", what, src.Container, src.Note)
}

// logCut is file.cut.json: what was kept of a log longer than the limit,
// and the hash and length of all of it, computed while it streamed. The
// stored file is the first HeadBytes of the log, the marker line (after a
// newline of its own when the head does not end with one), then the last
// TailBytes.
type logCut struct {
	// File is the log's path in the bundle.
	File      string `json:"file"`
	Container string `json:"container"`
	// Bytes and SHA256 are the length and hash of the whole stream the
	// kubelet sent (with timestamps), before anything was left out.
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
	// Complete is false when the stream broke off: Bytes and SHA256 then
	// cover what was read.
	Complete     bool   `json:"complete"`
	LimitBytes   int64  `json:"limitBytes"`
	HeadBytes    int64  `json:"headBytes"`
	TailBytes    int64  `json:"tailBytes"`
	SkippedBytes int64  `json:"skippedBytes"`
	Marker       string `json:"marker,omitempty"`
}

// headTail is an io.Writer that keeps the first and the last bytes of a
// stream within a limit, half each, and hashes and counts all of it. It
// holds at most the limit in memory: the head, and the tail in a ring.
type headTail struct {
	head, ring       []byte
	headMax, tailMax int
	// pos is where the ring's next byte goes, once it is full.
	pos int
	n   int64
	h   hash.Hash
}

func newHeadTail(limit int64) *headTail {
	tail := int(limit / 2)
	return &headTail{headMax: int(limit) - tail, tailMax: tail, h: sha256.New()}
}

func (c *headTail) Write(p []byte) (int, error) {
	written := len(p)
	c.n += int64(written)
	c.h.Write(p)
	k := min(len(p), c.headMax-len(c.head))
	c.head, p = appendBounded(c.head, p[:k], c.headMax), p[k:]
	k = min(len(p), c.tailMax-len(c.ring))
	c.ring, p = appendBounded(c.ring, p[:k], c.tailMax), p[k:]
	if len(p) == 0 || c.tailMax == 0 {
		return written, nil
	}
	// The ring is full: p overwrites its oldest bytes.
	if len(p) > c.tailMax {
		p = p[len(p)-c.tailMax:]
	}
	k = copy(c.ring[c.pos:], p)
	copy(c.ring, p[k:])
	c.pos = (c.pos + len(p)) % c.tailMax
	return written, nil
}

// appendBounded appends p to b, never growing b's capacity past max.
func appendBounded(b, p []byte, max int) []byte {
	if len(p) == 0 {
		return b
	}
	if cap(b)-len(b) < len(p) {
		grown := make([]byte, len(b), min(max, 2*cap(b)+len(p)))
		copy(grown, b)
		b = grown
	}
	return append(b, p...)
}

// cut says whether bytes were left out between the head and the tail.
func (c *headTail) cut() bool { return c.skipped() > 0 }

func (c *headTail) skipped() int64 { return c.n - int64(len(c.head)+len(c.ring)) }

func (c *headTail) tailLen() int { return len(c.ring) }

// tail reads the last bytes, in order.
func (c *headTail) tail() io.Reader {
	return io.MultiReader(bytes.NewReader(c.ring[c.pos:]), bytes.NewReader(c.ring[:c.pos]))
}

// marker is the line that stands for the bytes left out.
func (c *headTail) marker(sum string) string {
	nl := ""
	if len(c.head) > 0 && c.head[len(c.head)-1] != '\n' {
		nl = "\n"
	}
	return fmt.Sprintf("%s--- kir: %d bytes left out here (bytes %d to %d of a %d-byte log, sha256 %s) ---\n",
		nl, c.skipped(), len(c.head), c.n-int64(len(c.ring)), c.n, sum)
}
