package kubetest

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestImageIDStages(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	ns := namespace(t, "imageid")
	node, err := cluster.AddNode(ctx, ns+"-node")
	if err != nil {
		t.Fatal(err)
	}
	const (
		podID  = "registry.example/app@sha256:1111111111111111111111111111111111111111111111111111111111111111"
		sideID = "docker-pullable://registry.example/side@sha256:2222222222222222222222222222222222222222222222222222222222222222"
		dbgID  = "sha256:3333333333333333333333333333333333333333333333333333333333333333"
	)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: "restarted",
			Annotations: map[string]string{
				ImageIDAnnotation:               podID,
				ImageIDAnnotation + ".side":     sideID,
				ImageIDAnnotation + ".debugger": dbgID,
			},
		},
		Spec: corev1.PodSpec{
			NodeName:       node.Name,
			InitContainers: []corev1.Container{{Name: "init", Image: "registry.example/app:1"}},
			Containers: []corev1.Container{
				{Name: "app", Image: "registry.example/app:1"},
				{Name: "side", Image: "registry.example/side:1"},
			},
		},
	}
	if _, err := cluster.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitRunning(t, ns, pod.Name)
	got, err := cluster.Client.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"init": podID, "app": podID, "side": sideID}
	statuses := append(append([]corev1.ContainerStatus{}, got.Status.InitContainerStatuses...), got.Status.ContainerStatuses...)
	if len(statuses) != len(want) {
		t.Fatalf("%d container statuses, want %d: %+v", len(statuses), len(want), statuses)
	}
	for _, s := range statuses {
		if s.ImageID != want[s.Name] {
			t.Errorf("container %s: imageID %q, want %q", s.Name, s.ImageID, want[s.Name])
		}
	}
	for _, s := range got.Status.ContainerStatuses {
		if s.RestartCount != 1 || s.LastTerminationState.Terminated == nil || s.State.Running == nil {
			t.Errorf("container %s: restartCount %d, lastState %+v, state %+v: want a running container restarted once", s.Name, s.RestartCount, s.LastTerminationState, s.State)
		}
	}
	if got.Status.PodIP == "" {
		t.Error("no pod IP: the stage must do what pod-ready does")
	}

	// kwok serves the previous log of a container from the ClusterLogs'
	// previousLogsFile.
	prev, err := cluster.Client.CoreV1().Pods(ns).GetLogs(pod.Name, &corev1.PodLogOptions{Container: "app", Previous: true}).DoRaw(ctx)
	if err != nil {
		t.Fatalf("previous logs: %v", err)
	}
	if strings.TrimSpace(string(prev)) != previousPodLog {
		t.Errorf("previous logs = %q, want %q", prev, previousPodLog)
	}

	// An ephemeral container (kubectl debug) gets a status too.
	got.Spec.EphemeralContainers = []corev1.EphemeralContainer{{
		EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debugger", Image: "registry.example/debug:1"},
		TargetContainerName:      "app",
	}}
	if _, err := cluster.Client.CoreV1().Pods(ns).UpdateEphemeralContainers(ctx, pod.Name, got, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	var last []corev1.ContainerStatus
	err = Eventually(ctx, 30*time.Second, func(ctx context.Context) (bool, error) {
		p, err := cluster.Client.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		last = p.Status.EphemeralContainerStatuses
		return len(last) == 1, nil
	})
	if err != nil {
		t.Fatalf("ephemeral container status never reported (last %+v): %v", last, err)
	}
	if s := last[0]; s.Name != "debugger" || s.ImageID != dbgID || s.State.Running == nil {
		t.Errorf("ephemeral status %+v, want debugger running with imageID %q", s, dbgID)
	}
}

func TestImageIDStagesLeaveOtherPodsAlone(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	ns := namespace(t, "plain")
	node, err := cluster.AddNode(ctx, ns+"-node")
	if err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "plain"},
		Spec: corev1.PodSpec{
			NodeName:   node.Name,
			Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}},
		},
	}
	if _, err := cluster.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitRunning(t, ns, pod.Name)
	got, err := cluster.Client.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range got.Status.ContainerStatuses {
		if s.ImageID != "" || s.RestartCount != 0 {
			t.Errorf("container %s of an unannotated pod: imageID %q, restartCount %d; want kwok's pod-ready (none, 0)", s.Name, s.ImageID, s.RestartCount)
		}
	}
}
