package action

import (
	"sync"

	corev1 "k8s.io/api/core/v1"
)

// Found holds the objects a run's read-only steps read before any step
// changed anything (see Env.Found), so that the step that then acts on them
// need not read them again: contain-pod's snapshot GETs the pod it records,
// and isolating the pod starts from that read. The recorded evidence and
// the prior state isolation records are then the same object. A nil
// *Found holds nothing.
type Found struct {
	mu   sync.Mutex
	pods map[string]*corev1.Pod
}

// AddPod keeps pod as found.
func (f *Found) AddPod(pod *corev1.Pod) {
	if f == nil || pod == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pods == nil {
		f.pods = map[string]*corev1.Pod{}
	}
	f.pods[pod.Namespace+"/"+pod.Name] = pod.DeepCopy()
}

// Pod returns a copy of the pod namespace/name as found, or nil.
func (f *Found) Pod(namespace, name string) *corev1.Pod {
	if f == nil {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pods[namespace+"/"+name].DeepCopy()
}
