package collect

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"kir.dev/kir/evidence"
)

// Defaults used when Options leave them zero.
const (
	DefaultLogLimitBytes = 10 << 20
	DefaultTimeout       = 5 * time.Minute
	DefaultJobs          = 4
)

// Options say where evidence goes and what to collect.
type Options struct {
	// Sink receives every file and custody entry. Required. Image blobs
	// are Put concurrently (see Jobs): the Sink must allow that.
	Sink evidence.Sink
	// Dir is the folder inside the bundle the pod's files go to, "" for
	// the bundle's root; set it (e.g. "pods/NS/NAME") to collect several
	// pods into one bundle.
	Dir string
	// Cluster is the API server's URL, recorded in every Source.
	Cluster string

	// SkipPodManifest says pod.json was already written by PodManifest
	// (contain-pod does so before changing anything).
	SkipPodManifest bool
	// LogLimitBytes bounds what is kept of each container log: a longer
	// log keeps its first and its last half of it, around a line marking
	// the gap, and is marked Truncated; the whole stream is still read,
	// hashed and counted. 0 means DefaultLogLimitBytes. At most this much
	// is held in memory per log.
	LogLimitBytes int64
	// Checkpoint asks the kubelet to checkpoint every running container
	// (CheckpointRules). The archive stays on the node.
	Checkpoint bool
	// Images pulls every container's image by the digest the kubelet
	// reports and stores it as an OCI layout.
	Images bool

	// Keychain gives registry credentials. Nil means the pod's
	// imagePullSecrets if PullSecrets is set (and readable), then
	// authn.DefaultKeychain (the docker config of the user running kir).
	Keychain authn.Keychain
	// PullSecrets reads the pod's imagePullSecrets to authenticate to
	// registries (PullSecretRules: get secrets).
	PullSecrets bool
	// Insecure allows plain HTTP to registries.
	Insecure bool
	// Transport is the HTTP transport to registries; nil means a clone
	// of http.DefaultTransport sized for Jobs parallel downloads.
	Transport http.RoundTripper
	// Jobs bounds the blobs downloaded at once; 0 means DefaultJobs.
	Jobs int
	// Progress, when set, receives a progress bar per image. An *os.File
	// that is not a terminal gets none.
	Progress io.Writer

	// Timeout bounds each step: one API request, one checkpoint, one
	// image. 0 means DefaultTimeout.
	Timeout time.Duration
	// Log receives what collect does; nil means silence.
	Log *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// ErrNoSink is returned when Options.Sink is nil.
var ErrNoSink = errors.New("collect: Options.Sink is nil")

func (o Options) withDefaults() (Options, error) {
	if o.Sink == nil {
		return o, ErrNoSink
	}
	if o.LogLimitBytes <= 0 {
		o.LogLimitBytes = DefaultLogLimitBytes
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Jobs <= 0 {
		o.Jobs = DefaultJobs
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o, nil
}

// Result lists what a collection wrote and what it noted.
type Result struct {
	// Files are the files written, in order.
	Files []evidence.File
	// Notes are the custody notes written: what was absent or failed.
	Notes []string
	// Images are the images pulled, one per distinct digest.
	Images []Image
	// Checkpoints are the checkpoints the kubelet made.
	Checkpoints []Checkpoint
}
