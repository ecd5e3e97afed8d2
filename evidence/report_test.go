package evidence_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"html"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"kir.dev/kir/evidence"
	"kir.dev/kir/internal/kubetest"
)

// timelineEntry is a custody entry as the timeline shows it.
type timelineEntry struct {
	Seq    int
	Action string
	Time   string
}

var (
	domEntry  = regexp.MustCompile(`<li id="entry-(\d+)" class="entry[^"]*" data-action="([^"]*)">\s*<time datetime="([^"]*)">`)
	domChange = regexp.MustCompile(`<tr id="change-(\d+)">`)
	// loadingAttr finds an attribute, in a tag, that loads or runs
	// something; escaped text has no "<" to match.
	loadingAttr = regexp.MustCompile(`<[a-z][^>]*\s(src|href|action|on[a-z]+)=`)
)

// TestReportInChromium renders report.html in a real browser and reads the
// incident timeline back from the DOM it built.
func TestReportInChromium(t *testing.T) {
	t.Parallel()
	signer, _ := newKey(t, evidence.AlgEd25519)
	dir := makeBundle(t, signer)
	dom := kubetest.RenderDOM(t, filepath.Join(dir, evidence.ReportFile))
	if bytes.Contains(dom, []byte("alert-heading")) {
		t.Error("the report of a bundle without an alert shows an alert section")
	}

	// The custody log says what the timeline must show.
	var want []timelineEntry
	var wantChanges []int
	f, err := os.Open(filepath.Join(dir, evidence.CustodyFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var rec struct {
			Seq  int    `json:"seq"`
			Time string `json:"time"`
			Type string `json:"type"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatal(err)
		}
		want = append(want, timelineEntry{rec.Seq, rec.Type, rec.Time})
		if rec.Type == "contain" || rec.Type == "run-step" {
			wantChanges = append(wantChanges, rec.Seq)
		}
	}

	var got []timelineEntry
	for _, m := range domEntry.FindAllSubmatch(dom, -1) {
		seq, _ := strconv.Atoi(string(m[1]))
		got = append(got, timelineEntry{seq, string(m[2]), string(m[3])})
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("timeline in the rendered DOM (-want +got):\n%s\nDOM:\n%s", diff, dom)
	}
	var gotChanges []int
	for _, m := range domChange.FindAllSubmatch(dom, -1) {
		seq, _ := strconv.Atoi(string(m[1]))
		gotChanges = append(gotChanges, seq)
	}
	if diff := cmp.Diff(wantChanges, gotChanges); diff != "" {
		t.Errorf("changes in the rendered DOM (-want +got):\n%s", diff)
	}
	var m evidence.Manifest
	readJSON(t, filepath.Join(dir, evidence.ManifestFile), &m)
	for _, f := range m.Files {
		if f.Path != evidence.ReportFile && !bytes.Contains(dom, []byte(f.SHA256)) {
			t.Errorf("the rendered DOM lacks %s's hash %s", f.Path, f.SHA256)
		}
	}
	for _, s := range []string{"kir-quarantine-1234", `"step": "cordon"`, signer.KeyID()} {
		if !bytes.Contains(dom, []byte(s)) {
			t.Errorf("the rendered DOM lacks %q", s)
		}
	}
}

// TestReportSelfContained: the page loads nothing and runs nothing, and
// what came from the cluster cannot inject markup.
func TestReportSelfContained(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "b")
	b, err := evidence.Create(dir, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	hostile := `</pre><script>alert(1)</script><img src=x onerror=alert(2)>`
	if _, err := b.Put("logs/<img src=x>.log", strings.NewReader("x"), evidence.Source{Kind: "log", Pod: hostile}); err != nil {
		t.Fatal(err)
	}
	if err := b.Custody(evidence.Entry{Action: "contain", Detail: map[string]string{"pod": hostile}}); err != nil {
		t.Fatal(err)
	}
	if err := b.Seal(nil); err != nil {
		t.Fatal(err)
	}
	html := strings.ToLower(string(readFile(t, filepath.Join(dir, evidence.ReportFile))))
	for _, bad := range []string{"<script", "<img", "<link", "<iframe", "<object", "<embed", "url(", "@import"} {
		if strings.Contains(html, bad) {
			t.Errorf("report.html contains %q", bad)
		}
	}
	if m := loadingAttr.FindString(html); m != "" {
		t.Errorf("report.html has a tag that loads or runs something: %s", m)
	}
	if !strings.Contains(html, "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Error("report.html does not show the hostile detail, escaped")
	}
}

// reportAlert is an alert as kir serve's runs record it (falco.Alert's
// Vars), with markup where an attacker controls the text.
var reportAlert = map[string]any{
	"rule": "Drop and execute <new> binary", "priority": "Critical", "time": "2026-11-25T21:02:41.502337114Z",
	"uuid": "6f1c2b9e", "source": "syscall", "hostname": "worker-1", "tags": []string{"container", "mitre_persistence"},
	"output": "Critical Executing binary | command=kinsing -c '</pre><script>alert(1)</script>'",
	"fields": map[string]any{"proc.cmdline": "kinsing -c '</pre><script>alert(1)</script>'", "user.uid": "33"},
}

var (
	domAlertFact  = regexp.MustCompile(`<dd class="alert-(rule|priority|time)">(?:<time datetime="[^"]*">)?([^<]*)`)
	domAlertOut   = regexp.MustCompile(`<pre class="detail alert-output">([^<]*)</pre>`)
	domAlertField = regexp.MustCompile(`<tr data-field="([^"]*)"><td><code>[^<]*</code></td><td>([^<]*)</td></tr>`)
	// The capture's sections: a process's pid, depth and comm; the
	// miner's deleted executable; the peer, highlighted, with the
	// processes holding the socket; a listening port; a changed file.
	domProc      = regexp.MustCompile(`(?s)<tr class="proc[^"]*" data-pid="(\d+)" data-ppid="\d+" data-depth="(\d+)">.*?<code class="comm">([^<]*)</code>`)
	domDeleted   = regexp.MustCompile(`(?s)data-pid="12" [^>]*>.*?/tmp/kinsing \(deleted\)</code> <strong class="alarm">DELETED FROM DISK</strong>`)
	domPeer      = regexp.MustCompile(`<tr class="conn peer">.*<strong class="peer-addr">` + regexp.QuoteMeta(peerAddr) + `</strong></td><td><span class="owner">12 \(kinsing\)</span>`)
	domListen    = regexp.MustCompile(`<tr class="listen"><td>tcp <span class="who">ipv4</span></td><td>LISTEN</td><td><code>0\.0\.0\.0:8080</code>`)
	domLayerPath = regexp.MustCompile(`<tr class="layer-file"><td><code class="path">([^<]*)</code>`)
)

// TestReportAlertInChromium: a bundle holding the alert that started its
// run and the node agent's capture of the pod shows the alert's rule,
// priority, time, output and output fields, the process tree, the
// connections (the peer highlighted) and the changed files, as text, in
// the DOM a browser builds.
func TestReportAlertInChromium(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "b")
	b, err := evidence.Create(dir, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(reportAlert)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Put("run/alert.json", bytes.NewReader(raw), evidence.Source{Kind: "alert"}); err != nil {
		t.Fatal(err)
	}
	putNodeCapture(t, b, nil, nil, nil)
	if err := b.Seal(nil); err != nil {
		t.Fatal(err)
	}
	dom := kubetest.RenderDOM(t, filepath.Join(dir, evidence.ReportFile))
	got := map[string]string{}
	for _, m := range domAlertFact.FindAllSubmatch(dom, -1) {
		got[string(m[1])] = html.UnescapeString(string(m[2]))
	}
	if m := domAlertOut.FindSubmatch(dom); m != nil {
		got["output"] = html.UnescapeString(string(m[1]))
	}
	for _, m := range domAlertField.FindAllSubmatch(dom, -1) {
		got["fields."+string(m[1])] = html.UnescapeString(string(m[2]))
	}
	fields := reportAlert["fields"].(map[string]any)
	want := map[string]string{
		"rule": reportAlert["rule"].(string), "priority": "Critical", "time": reportAlert["time"].(string),
		"output": reportAlert["output"].(string), "fields.proc.cmdline": fields["proc.cmdline"].(string), "fields.user.uid": "33",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("the alert in the rendered DOM (-want +got):\n%s\nDOM:\n%s", diff, dom)
	}
	if bytes.Contains(bytes.ToLower(dom), []byte("<script")) {
		t.Error("the alert's or the capture's markup became an element")
	}

	var tree []string
	for _, m := range domProc.FindAllSubmatch(dom, -1) {
		tree = append(tree, string(m[1])+"@"+string(m[2])+" "+html.UnescapeString(string(m[3])))
	}
	wantTree := []string{"1@0 nginx", "7@1 sh", "12@2 kinsing", "15@2 " + hostile, "40@0 orphan", "50@0 cycle-a", "51@1 cycle-b", "3@0 pause"}
	if diff := cmp.Diff(wantTree, tree); diff != "" {
		t.Errorf("the process tree in the rendered DOM, pid@depth comm (-want +got):\n%s", diff)
	}
	for _, re := range []*regexp.Regexp{domDeleted, domPeer, domListen} {
		if !re.Match(dom) {
			t.Errorf("the rendered DOM has nothing matching %s", re)
		}
	}
	var changed []string
	for _, m := range domLayerPath.FindAllSubmatch(dom, -1) {
		changed = append(changed, html.UnescapeString(string(m[1])))
	}
	if diff := cmp.Diff([]string{"tmp", "tmp/kinsing", "tmp/" + hostile, "tmp/passwd"}, changed); diff != "" {
		t.Errorf("the changed files in the rendered DOM (-want +got):\n%s", diff)
	}
}
