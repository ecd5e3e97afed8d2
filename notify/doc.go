// Package notify tells people what kir serve did on its own: a run held
// for approval, finished, failed or refused. It is a library kir serve
// wires in; it logs nothing unless given a logger.
//
// # Delivery
//
// Enqueue writes each event, once per sink that wants its kind, to an
// outbox on disk (internal/spool: fsynced before Enqueue returns) and
// never waits on the network. Run delivers, one goroutine per sink, so a
// sink that hangs (each attempt is bounded by the sink's timeout, 5s by
// default) delays only its own messages. A message is retried with
// exponential, jittered backoff (1s up to 5m) until its receiver answers
// 2xx, or until GiveUpAfter (24h) from its event's enqueueing, when it is
// logged and counted as given up. What is unacknowledged when the process
// ends is sent after the next Open: delivery is at least once.
//
// Each message carries a delivery id (HeaderDelivery, and deliveryId in
// the JSON), the same on every attempt, derived from the sink and the ids
// of its events; a receiver that saw it drops the copy.
//
// # Storms
//
// More than Digest.After events (5) for one sink within Digest.Window
// (30s) are not sent one by one: the events past the fifth are gathered
// for a window and sent as one digest (at most 100 events each) that
// counts them by kind and lists them — every held run with its approve
// command, since a held run nobody hears of is never approved.
//
// # Sinks
//
// A webhook sink POSTs the Message as JSON, signed with HMAC-SHA256 as
// kir serve's intake verifies (internal/hmacsig): a fresh timestamp and
// signature on each attempt, the same body and delivery id. A slack sink
// POSTs {"text": ...} in mrkdwn to an incoming webhook. URLs and keys are
// read from files; a sink's URL appears in no error and no log line,
// since a Slack webhook's URL is its credential. Redirects are not
// followed. docs/notifications.md documents the JSON.
package notify
