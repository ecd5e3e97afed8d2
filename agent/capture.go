package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"kir.dev/kir/action"
	"kir.dev/kir/agent/container"
	"kir.dev/kir/agent/layer"
	"kir.dev/kir/agent/volatile"
)

// What the agent takes of a quarantined pod, in the order it disappears
// (RFC 3227): its processes, their executables deleted from disk and its
// sockets as soon as kir's policy is seen — before the cut, which
// destroys the sockets — then, once the pod is cut off, what its
// containers wrote (their writable layers). Never /proc/PID/environ.

// The states of a capture.
const (
	// CaptureTaking: the agent is taking it.
	CaptureTaking = "taking"
	// CaptureReady: sealed; kir may fetch it.
	CaptureReady = "ready"
	// CaptureFailed: nothing could be taken; CaptureRecord.Error says why.
	CaptureFailed = "failed"
)

// CaptureRecord is where the agent's capture of the pod stands, in its
// report.
type CaptureRecord struct {
	// ID names the capture on the node (serve.go).
	ID    string `json:"id"`
	State string `json:"state"`
	// Manifest is the hex SHA-256 of the capture's manifest as written:
	// kir checks what it fetched against it.
	Manifest string `json:"manifest,omitempty"`
	Files    int    `json:"files"`
	Bytes    int64  `json:"bytes"`
	// Errors counts what failed, named in the manifest.
	Errors int `json:"errors,omitempty"`
	// Error says why there is no capture.
	Error string `json:"error,omitempty"`
}

// ProcessesFile is processes.json.
type ProcessesFile struct {
	Node       string          `json:"node"`
	CapturedAt time.Time       `json:"capturedAt"`
	Containers []ContainerPIDs `json:"containers"`
	Processes  []ProcessRecord `json:"processes"`
}

// ContainerPIDs names a container's processes.
type ContainerPIDs struct {
	Name string `json:"name"`
	ID   string `json:"id"`
	PIDs []int  `json:"pids"`
}

// ProcessRecord is a process and its container ("" for the pod's sandbox).
type ProcessRecord struct {
	volatile.Process
	Container string `json:"container"`
}

// SocketsFile is sockets.json.
type SocketsFile struct {
	CapturedAt time.Time      `json:"capturedAt"`
	PodIPs     []string       `json:"podIPs"`
	Sockets    []SocketRecord `json:"sockets"`
}

// SocketRecord is one socket of the pod's network namespace.
type SocketRecord struct {
	Proto     string `json:"proto"`
	Family    string `json:"family"`
	State     string `json:"state"`
	Local     string `json:"local"`
	Remote    string `json:"remote"`
	Inode     uint32 `json:"inode"`
	UID       uint32 `json:"uid"`
	PIDs      []int  `json:"pids"`
	Listening bool   `json:"listening"`
}

// LayerFile is layer/<container>.json: what layer.Archive wrote of the
// container's upper directory, and where that was.
type LayerFile struct {
	Container  string    `json:"container"`
	CapturedAt time.Time `json:"capturedAt"`
	Upper      string    `json:"upper"`
	layer.Summary
}

// taking is a capture under way and what it needs for its second part.
type taking struct {
	c   *capture
	pod container.Pod
}

// captureVolatile takes the pod's processes, executables deleted from
// disk and sockets (ns nil: none, the pod has no namespace of its own).
// It returns nils when the agent keeps no captures, and a nil *taking
// with a failed record when it cannot keep this one.
func (a *Agent) captureVolatile(ctx context.Context, pod *corev1.Pod, ns podNS) (*taking, *CaptureRecord) {
	if a.cfg.CaptureDir == "" {
		return nil, nil
	}
	now := a.cfg.Now().UTC()
	id, err := captureID(now)
	if err != nil {
		return nil, &CaptureRecord{ID: id, State: CaptureFailed, Error: err.Error()}
	}
	budget := min(captureMaxBytes, captureDirMaxBytes-diskUsage(a.cfg.CaptureDir))
	c, err := newCapture(a.cfg.CaptureDir, action.QuarantineValue(pod.UID), id, Manifest{Node: a.cfg.Node, Namespace: pod.Namespace, Pod: pod.Name, UID: string(pod.UID), CapturedAt: now}, budget)
	if err != nil {
		return nil, &CaptureRecord{ID: id, State: CaptureFailed, Error: err.Error()}
	}
	t := &taking{c: c}
	procs, err := volatile.Processes(ctx, a.cfg.ProcRoot, volatile.MatchPod(string(pod.UID)), volatile.Options{})
	if err != nil {
		c.fail(fmt.Errorf("listing the pod's processes: %w", err))
	}
	t.pod, err = container.Find(ctx, a.cfg.ProcRoot, pod)
	if err != nil {
		c.fail(fmt.Errorf("mapping the pod's processes to its containers: %w", err))
	}
	for _, n := range t.pod.Notes {
		c.note("%s", n)
	}
	if err := c.writeJSON("processes.json", processesFile(a.cfg.Node, now, procs, t.pod)); err != nil {
		c.fail(err)
	}
	if ns != nil {
		a.captureSockets(ctx, c, pod, ns, procs)
	} else {
		c.note("no sockets: the pod has no network namespace of its own on this node")
	}
	a.copyDeleted(ctx, c, procs)
	return t, &CaptureRecord{ID: id, State: CaptureTaking}
}

// The byte budgets of captures: one pod's, and all those the node keeps
// until their pods are released, under the DaemonSet's emptyDir
// sizeLimit (4Gi), past which the kubelet would evict the agent — a pod
// could otherwise stop its own containment by writing gigabytes of
// executables or layer. Tar headers count, unlike in LayerMaxBytes.
const (
	captureMaxBytes    = 1 << 30
	captureDirMaxBytes = 3 << 30
	// layerIndexReserve is kept, of what is left, for a layer's tar
	// headers and its index (layer/<container>.json).
	layerIndexReserve = 64 << 20
)

// captureID names a capture: its time, and random bits so that two
// captures of a pod (an agent restarted within the clock's resolution, a
// test's fixed clock) never share a directory.
func captureID(now time.Time) (string, error) {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("naming the capture: %w", err)
	}
	return strconv.FormatInt(now.UnixNano(), 36) + "-" + hex.EncodeToString(b), nil
}

func processesFile(node string, at time.Time, procs []volatile.Process, pod container.Pod) ProcessesFile {
	f := ProcessesFile{Node: node, CapturedAt: at, Containers: []ContainerPIDs{}, Processes: []ProcessRecord{}}
	for _, c := range pod.Containers {
		f.Containers = append(f.Containers, ContainerPIDs{Name: c.Name, ID: c.ID, PIDs: c.PIDs})
	}
	for _, p := range procs {
		name, _ := pod.ContainerOf(p.PID)
		f.Processes = append(f.Processes, ProcessRecord{Process: p, Container: name})
	}
	return f
}

// captureSockets lists the pod's sockets, joined to its processes.
func (a *Agent) captureSockets(ctx context.Context, c *capture, pod *corev1.Pod, ns podNS, procs []volatile.Process) {
	at := a.cfg.Now().UTC()
	socks, err := a.cfg.net.sockets(ctx, ns, procs)
	if err != nil {
		c.fail(fmt.Errorf("listing the pod's sockets: %w", err))
		return
	}
	f := SocketsFile{CapturedAt: at, PodIPs: []string{}, Sockets: []SocketRecord{}}
	for _, ip := range podIPs(pod) {
		f.PodIPs = append(f.PodIPs, ip.String())
	}
	for _, s := range socks {
		f.Sockets = append(f.Sockets, SocketRecord{
			Proto: s.Proto, Family: s.Family, State: s.State.String(),
			Local: s.Local.String(), Remote: s.Remote.String(),
			Inode: s.Inode, UID: s.UID, PIDs: s.PIDs, Listening: s.Listening(),
		})
	}
	if err := c.writeJSON("sockets.json", f); err != nil {
		c.fail(err)
	}
}

// copyDeleted copies, once per hash, each executable that a process runs
// and that is deleted from disk: a dropped implant survives only through
// /proc/PID/exe. An executable still on disk is in the image or in the
// writable layer (taken after the cut).
func (a *Agent) copyDeleted(ctx context.Context, c *capture, procs []volatile.Process) {
	for _, p := range procs {
		if !p.ExeDeleted || p.ExeSHA256 == "" {
			continue
		}
		name := "exe/" + p.ExeSHA256
		if c.has(name) {
			continue
		}
		if left := c.left(); p.ExeSize > left {
			c.note("the deleted executable of PID %d (%d bytes, SHA-256 %s) was not copied: %d bytes left of the capture's budget", p.PID, p.ExeSize, p.ExeSHA256, left)
			continue
		}
		var got string
		err := c.write(name, func(w io.Writer) error {
			var err error
			_, got, err = volatile.CopyExe(ctx, a.cfg.ProcRoot, p, w, min(volatile.DefaultMaxHashBytes, c.left()))
			return err
		})
		switch {
		case err != nil:
			c.fail(fmt.Errorf("copying the deleted executable of PID %d: %w", p.PID, err))
		case got != p.ExeSHA256:
			c.fail(fmt.Errorf("the deleted executable of PID %d hashed %s when copied, %s when scanned: it changed in between", p.PID, got, p.ExeSHA256))
		}
	}
}

// captureLayers archives each container's writable layer: after the
// cut, so the attacker can no longer be told to wipe it.
func (a *Agent) captureLayers(ctx context.Context, t *taking) {
	for _, ct := range t.pod.Containers {
		if ct.Upper == "" {
			t.c.note("container %s: no writable layer taken: %s", ct.Name, strings.Join(ct.Errors, "; "))
			continue
		}
		at := a.cfg.Now().UTC()
		budget := a.cfg.LayerMaxBytes
		if budget <= 0 {
			budget = layer.DefaultMaxBytes
		}
		if left := t.c.left() - layerIndexReserve; left < budget {
			if left <= 0 {
				t.c.note("container %s: no writable layer taken: the capture's byte budget is spent", ct.Name)
				continue
			}
			t.c.note("container %s: its writable layer's budget cut to the %d bytes left of the capture's", ct.Name, left)
			budget = left
		}
		var sum layer.Summary
		err := t.c.write("layer/"+ct.Name+".tar", func(w io.Writer) error {
			var err error
			sum, err = layer.Archive(ctx, filepath.Join(a.cfg.HostRoot, ct.Upper), w, layer.Options{MaxBytes: budget})
			return err
		})
		if err != nil {
			t.c.fail(fmt.Errorf("container %s: archiving its writable layer: %w", ct.Name, err))
		}
		if err := t.c.writeJSON("layer/"+ct.Name+".json", LayerFile{Container: ct.Name, CapturedAt: at, Upper: ct.Upper, Summary: sum}); err != nil {
			t.c.fail(err)
		}
	}
}

// finishCapture takes the writable layers, seals the capture and
// publishes its digest in the report.
func (a *Agent) finishCapture(ctx context.Context, pod *corev1.Pod, t *taking, r *Report) {
	if t == nil {
		return
	}
	a.captureLayers(ctx, t)
	rec, err := t.c.seal()
	if err != nil {
		rec = CaptureRecord{ID: t.c.m.ID, State: CaptureFailed, Error: err.Error()}
	}
	r.Capture = &rec
	a.publish(ctx, pod, r)
}
