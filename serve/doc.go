// Package serve is kir serve: an authenticated webhook that receives Falco
// and Falcosidekick alerts and runs the playbooks they route to.
//
// Run owns the whole lifecycle, from options to shutdown:
//
//	err := serve.Run(ctx, serve.Options{
//		Listen: ":8765", TLS: cfg, Auth: &serve.Auth{Token: token},
//		Routing: routing, Library: lib, Engine: engine, Env: env,
//		SpoolDir: filepath.Join(state, "spool"),
//	})
//
// Alerts are posted to / or /falco. A request's credentials (a bearer
// token, a verified client certificate, and an HMAC signature when one is
// configured) are checked before its body is read; the body is bounded,
// decoded, routed (package falco), and answered 202 only once it is
// durable in the spool: an accepted alert survives a crash, and the next
// start resumes it. A full queue answers 503 with Retry-After, accepting
// nothing.
//
// Each routing match has a key (by default playbook, namespace and pod).
// One run per key at a time: alerts for a key being handled wait for its
// run and count as its duplicates, as do the key's alerts within its
// window; across replicas, Claims give each key to one replica through a
// Lease. Runs are recorded in the engine's journals, named after their
// alert (and, with claims, the replica), so that a replayed alert finds
// its run and finishes or resumes it rather than starting another.
//
// Only a run that succeeded, or failed for a reason a retry cannot fix,
// starts its key's window. One that failed for a transient reason (a 5xx,
// a timeout, a lost connection: see transient) leaves its key to be
// retried: the key's next alert after a backoff, on any replica that can
// read the run's journal, resumes the same run; a replica that cannot
// starts one of its own under the same claim. Attempts are capped
// (Options.RetryAttempts).
//
// Evidence collection yields to intake and isolation: a bounded number of
// collection steps run at once, and only while no alert is coming in or
// waiting, so that isolating the next pod never waits on collecting the
// last one's images.
//
// /healthz, /readyz (once the spool's alerts are queued again) and
// /metrics (Prometheus, see Metrics) are served on the same address. When
// Run's context ends it stops taking requests, lets the runs in progress
// finish within Options.ShutdownTimeout, and returns; what is left stays
// in the spool and the journals for the next start.
package serve
