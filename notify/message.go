package notify

import (
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// The identifiers of the webhook's JSON body.
const (
	APIVersion  = "kir.dev/v1alpha1"
	MessageKind = "Notification"
)

// HeaderDelivery is the webhook header that carries the message's
// delivery id: the same on every attempt of one message, so that a
// receiver that got it once can drop the retries.
const HeaderDelivery = "X-Kir-Delivery"

// Message is what one delivery sends to one sink: one event, or in a
// storm a digest of several. It is the generic webhook's JSON body.
type Message struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	// DeliveryID is unique per message and sink, stable across attempts.
	DeliveryID string `json:"deliveryId"`
	// Digest is set when the message gathers the events of a storm.
	Digest *Digest `json:"digest,omitempty"`
	// Events are the events, in the order they were enqueued.
	Events []Event `json:"events"`
}

// Digest summarises a digest message.
type Digest struct {
	// Counts is the number of events of each kind in the message.
	Counts map[Kind]int `json:"counts"`
	// Window is the window the storm was measured over.
	Window string `json:"window"`
}

// newMessage builds the message of events for the sink named sink; its
// delivery id is derived from both, so a message rebuilt with the same
// events (a retry, or a single event after a restart) keeps it.
func newMessage(sink string, events []Event, digest bool, window time.Duration) *Message {
	h := sha256.New()
	h.Write([]byte(sink))
	for _, e := range events {
		h.Write([]byte{0})
		h.Write([]byte(e.ID))
	}
	m := &Message{
		APIVersion: APIVersion,
		Kind:       MessageKind,
		DeliveryID: hex.EncodeToString(h.Sum(nil)[:16]),
		Events:     events,
	}
	if digest {
		m.Digest = &Digest{Counts: map[Kind]int{}, Window: window.String()}
		for _, e := range events {
			m.Digest.Counts[e.Kind]++
		}
	}
	return m
}
