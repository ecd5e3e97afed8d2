package kubetest

import (
	"fmt"
	"io/fs"
)

// ImageIDAnnotation, on a pod of a cluster started with ImageIDStages,
// is the image ID kwok reports for each of its containers, as a kubelet
// would (status.containerStatuses[].imageID and the init and ephemeral
// ones). ImageIDAnnotation + "." + container name overrides it for one
// container.
const ImageIDAnnotation = "kir.dev/test-image-id"

// ImageIDStages returns kir's own kwok stages, to append to
// Options.ExtraKwokConfig. For pods annotated with ImageIDAnnotation they
// replace kwok's pod-ready: every container gets that image ID, and every
// regular container looks restarted once (restartCount 1, a terminated
// lastState), so that collectors ask for its previous log. Ephemeral
// containers added later get a running status with the image ID too.
// Other pods are left to kwok's own stages.
func ImageIDStages() ([][]byte, error) {
	var docs [][]byte
	for _, name := range []string{"kir-pod-image-id.yaml", "kir-pod-ephemeral.yaml"} {
		b, err := fs.ReadFile(stages, "stages/"+name)
		if err != nil {
			return nil, fmt.Errorf("reading embedded kwok stage: %w", err)
		}
		docs = append(docs, b)
	}
	return docs, nil
}
