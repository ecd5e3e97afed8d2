package smserver

import (
	"bytes"
	"slices"
	"time"
)

// The staging labels Secrets Manager itself moves.
const (
	stageCurrent  = "AWSCURRENT"
	stagePrevious = "AWSPREVIOUS"
)

// secret is one secret with all its versions, deprecated ones included.
type secret struct {
	name, arn   string
	description string
	kmsKeyID    string
	tags        []tag

	created, changed, accessed time.Time
	// deleted is when DeleteSecret scheduled the secret for deletion; zero
	// while it is live.
	deleted time.Time

	versions map[string]*version
	// order holds the version IDs oldest first, so that listings do not
	// depend on map order.
	order []string
}

type version struct {
	id       string
	str      *string
	bin      []byte
	created  time.Time
	accessed time.Time
	// stages in the order they were attached.
	stages []string
}

// sameValue reports whether a request's value is the one v holds, which is
// what decides whether a repeated ClientRequestToken is a harmless retry.
func (v *version) sameValue(str *string, bin []byte) bool {
	if (v.str == nil) != (str == nil) || (v.bin == nil) != (bin == nil) {
		return false
	}
	return (str == nil || *v.str == *str) && bytes.Equal(v.bin, bin)
}

func (v *version) has(stage string) bool { return slices.Contains(v.stages, stage) }

func (v *version) detach(stage string) {
	v.stages = slices.DeleteFunc(v.stages, func(s string) bool { return s == stage })
}

// holder returns the version that stage is attached to, or nil.
func (s *secret) holder(stage string) *version {
	for _, id := range s.order {
		if v := s.versions[id]; v.has(stage) {
			return v
		}
	}
	return nil
}

// attach puts stage on v, taking it off whichever version had it: a label
// is on at most one version. Moving AWSCURRENT goes through moveCurrent.
func (s *secret) attach(stage string, v *version) {
	if stage == stageCurrent {
		s.moveCurrent(v)
		return
	}
	if h := s.holder(stage); h != nil {
		if h == v {
			return
		}
		h.detach(stage)
	}
	v.stages = append(v.stages, stage)
}

// moveCurrent puts AWSCURRENT on v and, as AWS does whenever AWSCURRENT
// moves, AWSPREVIOUS on the version it left: AWSPREVIOUS leaves whichever
// version had it, so there is only ever one.
func (s *secret) moveCurrent(v *version) {
	old := s.holder(stageCurrent)
	if old == v {
		return
	}
	if old != nil {
		old.detach(stageCurrent)
		s.attach(stagePrevious, old)
	}
	v.stages = append(v.stages, stageCurrent)
}

// addVersion stores a new version with no labels yet.
func (s *secret) addVersion(id string, str *string, bin []byte, now time.Time) *version {
	v := &version{id: id, str: str, bin: bin, created: now}
	s.versions[id] = v
	s.order = append(s.order, id)
	return v
}

// stagesOf returns a version's labels as a response carries them: never
// nil, so that an unlabelled version answers [] rather than nothing.
func stagesOf(v *version) []string {
	return append([]string{}, v.stages...)
}

// labelled maps each version that has a label to its labels, as
// DescribeSecret's VersionIdsToStages does.
func (s *secret) labelled() map[string][]string {
	m := make(map[string][]string)
	for _, id := range s.order {
		if v := s.versions[id]; len(v.stages) > 0 {
			m[id] = stagesOf(v)
		}
	}
	return m
}
