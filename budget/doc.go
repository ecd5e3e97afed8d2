// Package budget limits how much kir does on its own: at most Pods pods
// contained and Nodes nodes cordoned per Window, and never more nodes than
// MaxNodeShare of the Ready ones (rounded down), for the whole
// installation, whichever replica or laptop acts. A run over the pod
// budget is held whole; over the node budget only its cordon step is held
// (the caller's part: Take says no with an *OverBudget). The pause switch
// lives here too: while paused, every new run is held.
//
// # Storage: one ConfigMap
//
// The budget is the ConfigMap kir-budget in kir's namespace, labelled
// app.kubernetes.io/managed-by=kir and kir.dev/budget=true. Its data holds
// the window's slots (data.slots: a JSON array, one record a line:
// kind, key, run, at), the limits the last taker enforced (data.limits)
// and the pause switch (data.paused-by, data.paused-since). A ConfigMap
// rather than a Lease: the slots are structured data, which a ConfigMap's
// data holds up to the 1 MiB object limit and `kubectl get -o yaml` shows
// as written, where a Lease would carry them in annotations (256 KiB for
// all of them, and a holder/renew shape that means something else to
// every tool that reads Leases); and its RBAC can be limited to this one
// name (Rules).
//
// # Compare-and-swap
//
// Every change reads the object, changes it, and writes it with Update
// carrying the resourceVersion it read: the API server refuses the write
// with a Conflict if anyone wrote in between, and the change is made
// again from a new read (after a short random wait). Two replicas can
// therefore never both take the last slot: the second write is refused,
// and on the reread the slot is gone. A missing object is created the
// same way (AlreadyExists: reread). Server-side apply is not used: a
// budget is a read-modify-write of one whole value.
//
// Take is all or none and idempotent per (run, key): a resumed run that
// takes what it holds succeeds without counting it twice (and writes
// nothing). A slot counts an action, not a containment in force, so there
// is no Release: releasing a pod does not give its slot back, the window
// does.
//
// # Time
//
// A slot is stamped with the taker's clock (Budget.Now) and expires Window
// later, on the clock of whoever reads it. The API server offers no clock
// a client can compare against (managedFields times are seconds, per
// manager, and change on any write). Replicas' clocks are kept by NTP to
// well under a second; a skew of s shifts a slot's expiry by s, which
// against a 10-minute window changes the rate by a fraction of a percent.
// A slot stamped later than the reader's now (a clock running ahead) is
// restamped with now on the next write, so a wrong clock holds slots no
// longer than one window of the writer's clock.
//
// # Size
//
// Each write drops the expired slots, and a Take never writes more slots
// of a kind than its limit, so the object holds at most Pods+Nodes records
// (MaxSlots = 1100 with the largest Config) of at most MaxKeyLen+MaxRunLen
// bytes each: under 1 MiB, whatever a storm of alerts does.
//
// # Failing closed
//
// An object that does not decode, an API server that cannot be reached,
// Ready nodes that cannot be counted: Take returns an error, and the
// caller holds the run. Deleting the object resets the counts (and
// unpauses).
package budget
