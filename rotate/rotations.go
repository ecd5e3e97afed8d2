package rotate

// Rotated is implemented by the outputs of rotate's actions that rotated
// secrets in a store (rotate.issue-secret's and rotate.issue-kubeconfig's
// SecretRotation, rotate-x509.user's X509Output, rotate.pod-credentials'
// PodOutput): what `kir rotate rollback` undoes and `kir rotate status`
// lists, read from a run's steps whatever the playbook.
type Rotated interface {
	// Rotations returns the secrets the step rotated, each with the
	// rotation id it wrote under, given the step's rotation parameter.
	Rotations(rotation string) []Rotation
}

// Rotation is one secret's rotation with its id: what
// rotate.rollback-secret takes.
type Rotation struct {
	// ID is the rotation id the new version was written under.
	ID string
	SecretRotation
}

var (
	_ Rotated = SecretRotation{}
	_ Rotated = X509Output{}
	_ Rotated = PodOutput{}
)

// Rotations is the secret's rotation, once a version was written.
func (r SecretRotation) Rotations(rotation string) []Rotation {
	if r.Ref == "" || r.NewVersion == "" {
		return nil
	}
	return []Rotation{{ID: rotation, SecretRotation: r}}
}

// Rotations are the rotations of the pods' secrets, each under its own id
// (podRotation).
func (o PodOutput) Rotations(rotation string) []Rotation {
	var out []Rotation
	for _, r := range o.Secrets {
		out = append(out, r.Rotations(podRotation(rotation, r.Ref))...)
	}
	return out
}

// podRotation is the rotation id rotate.pod-credentials writes one of the
// pods' secrets under.
func podRotation(rotation, ref string) string { return rotation + "/" + ref }
