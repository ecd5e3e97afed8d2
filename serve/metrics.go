package serve

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are what /metrics serves.
type Metrics struct {
	Registry *prometheus.Registry

	Received     prometheus.Counter
	Accepted     prometheus.Counter
	Deduplicated prometheus.Counter
	Rejected     *prometheus.CounterVec // by reason
	Unrouted     prometheus.Counter
	// Runs counts runs (a first run or a resume) by playbook and result:
	// the run's status, "error" for a run that could not start, or
	// "retried" for one that failed for a transient reason and waits for
	// the key's next alert to resume it.
	Runs  *prometheus.CounterVec
	Queue prometheus.Gauge
	// AcceptLatency is from a request's arrival to its 202: the durable
	// write included.
	AcceptLatency prometheus.Histogram
	// StartLatency and RunLatency are from an alert's arrival to its run's
	// start and end.
	StartLatency *prometheus.HistogramVec
	RunLatency   *prometheus.HistogramVec
	// RecordFailures counts the response records that could not be
	// written (the alert then lives in this replica's spool only);
	// Takeovers the records taken over from a replica whose claim expired.
	RecordFailures prometheus.Counter
	Takeovers      prometheus.Counter
	// Notifications counts, by sink and result (sent, failed, given-up),
	// the notifications' events and attempts.
	Notifications *prometheus.CounterVec
	// Tamper counts the tamper guard's findings by kind and result
	// (restored, failed, reported): serve/tamper.go.
	Tamper *prometheus.CounterVec
}

// NewMetrics registers kir serve's metrics, with the Go runtime's and the
// process's, in a new registry.
func NewMetrics() *Metrics {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	buckets := []float64{.001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5, 10, 30, 60}
	m := &Metrics{
		Registry:     r,
		Received:     prometheus.NewCounter(prometheus.CounterOpts{Name: "kir_alerts_received_total", Help: "Alert requests received."}),
		Accepted:     prometheus.NewCounter(prometheus.CounterOpts{Name: "kir_alerts_accepted_total", Help: "Alerts accepted: durable before the 202."}),
		Deduplicated: prometheus.NewCounter(prometheus.CounterOpts{Name: "kir_alerts_deduplicated_total", Help: "Routed alerts that a run for the same key already covers."}),
		Rejected:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kir_alerts_rejected_total", Help: "Alert requests refused, by reason."}, []string{"reason"}),
		Unrouted:     prometheus.NewCounter(prometheus.CounterOpts{Name: "kir_alerts_unrouted_total", Help: "Accepted alerts that no routing rule acts on."}),
		Runs:         prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kir_runs_total", Help: "Playbook runs finished, by playbook and result (retried: failed for a transient reason, to be resumed)."}, []string{"playbook", "result"}),
		Queue:        prometheus.NewGauge(prometheus.GaugeOpts{Name: "kir_queue_depth", Help: "Routed alerts waiting for a worker."}),
		AcceptLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "kir_alert_accept_seconds", Help: "From an alert's arrival to its 202, the durable write included.", Buckets: buckets,
		}),
		StartLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "kir_run_start_seconds", Help: "From an alert's arrival to its run's start.", Buckets: buckets,
		}, []string{"playbook"}),
		RunLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "kir_run_seconds", Help: "From an alert's arrival to its run's end.", Buckets: buckets,
		}, []string{"playbook"}),
		RecordFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "kir_records_failed_total", Help: "Response records that could not be written or updated: the alert then lives in this replica's spool only."}),
		Takeovers:      prometheus.NewCounter(prometheus.CounterOpts{Name: "kir_records_taken_over_total", Help: "Response records taken over from a replica whose claim expired."}),
		Notifications:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kir_notifications_total", Help: "Notifications by sink and result: events sent, attempts failed, events given up."}, []string{"sink", "result"}),
		Tamper:         prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kir_tamper_findings_total", Help: "Lifted or weakened quarantines the tamper guard found, by kind and result (restored, failed, reported)."}, []string{"kind", "result"}),
	}
	r.MustRegister(m.Received, m.Accepted, m.Deduplicated, m.Rejected, m.Unrouted, m.Runs, m.Queue, m.AcceptLatency, m.StartLatency, m.RunLatency, m.RecordFailures, m.Takeovers, m.Notifications, m.Tamper)
	return m
}
