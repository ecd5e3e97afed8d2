package contain

import (
	"maps"
	"strings"

	"kir.dev/kir/action"
)

// kirAnnotations returns the annotations under action.AnnotationPrefix (of
// a node: on pods, podAnnotations lists those kir wrote).
func kirAnnotations(in map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range in {
		if strings.HasPrefix(k, action.AnnotationPrefix) {
			out[k] = v
		}
	}
	return out
}

// merged returns a copy of base with over's entries set.
func merged(base, over map[string]string) map[string]string {
	out := maps.Clone(base)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, over)
	return out
}

// subset returns the entries of m whose keys are listed.
func subset(m map[string]string, keys []string) map[string]string {
	out := map[string]string{}
	for _, k := range keys {
		if v, ok := m[k]; ok {
			out[k] = v
		}
	}
	return out
}
