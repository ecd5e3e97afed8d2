package evidence

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"kir.dev/kir/internal/journal"
)

// report.html is one page with no external asset and no script, so that it
// opens the same offline, years later, in any browser; html/template
// escapes everything that came from the cluster.
//
//go:embed report.html.tmpl
var reportSource string

var reportTemplate = template.Must(template.New("report").Funcs(template.FuncMap{
	"rfc3339": func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) },
	"when":    func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05.000 UTC") },
	"size":    humanSize,
	"source":  describeSource,
	"short":   shortHash,
	"indent":  indent,
	"maxRows": func() int { return maxRows },
}).Parse(reportSource))

// changeActions are the custody actions that changed the cluster.
var changeActions = map[string]bool{"contain": true, "run-step": true}

// reportData is what report.html shows.
type reportData struct {
	Incident                     string
	Created, Sealed              time.Time
	Actor, OSUser, Host, Version string
	Files                        []File
	Custody                      []journal.Record
	Log                          SealedLog
	KeyID                        string
	// Alerts are the alerts that started the runs (files of kind alert).
	Alerts []reportAlert
	// Nodes are what the node agent captured of each pod: processes,
	// sockets, changed files.
	Nodes []reportPod
}

// reportAlert is an alert that started a run, as the page shows it: the
// fields of falco.Alert.Vars, as the run's journal recorded them.
type reportAlert struct {
	File                         string
	Rule, Priority, Time, Output string
	UUID, Source, Hostname       string
	Tags                         []string
	Fields                       []alertField
	// Err says why the file could not be read; the rest is then empty.
	Err string
}

type alertField struct{ Name, Value string }

// readAlerts reads the files of kind alert in dir; one that cannot be
// read is shown as such, and does not stop the seal.
func readAlerts(dir string, files []File) []reportAlert {
	var out []reportAlert
	for _, f := range files {
		if f.Source.Kind != "alert" {
			continue
		}
		a, err := readAlert(dir, f)
		if err != nil {
			a = reportAlert{Err: err.Error()}
		}
		a.File = f.Path
		out = append(out, a)
	}
	return out
}

// readAlert reads an alert file of the bundle in dir.
func readAlert(dir string, f File) (reportAlert, error) {
	var v struct {
		Rule, Priority, Time, Output, UUID, Source, Hostname string
		Tags                                                 []string
		Fields                                               map[string]any
	}
	if err := readRecordedJSON(dir, f, &v); err != nil {
		return reportAlert{}, err
	}
	a := reportAlert{Rule: v.Rule, Priority: v.Priority, Time: v.Time, Output: v.Output,
		UUID: v.UUID, Source: v.Source, Hostname: v.Hostname, Tags: v.Tags}
	for _, k := range slices.Sorted(maps.Keys(v.Fields)) {
		val, ok := v.Fields[k].(string)
		if !ok {
			b, _ := json.Marshal(v.Fields[k])
			val = string(b)
		}
		a.Fields = append(a.Fields, alertField{k, val})
	}
	return a, nil
}

// maxShownSize bounds a file the report reads to show what it holds (an
// alert, a process table, a layer's index): a larger one is named as
// such, not read into memory.
const maxShownSize = 64 << 20

// readRecorded reads the bundle file f, in dir, for the report to show:
// only if it still hashes to the SHA-256 recorded when it was written, so
// that the page never shows what the manifest does not vouch for. The
// bytes hashed are the bytes returned.
func readRecorded(dir string, f File) ([]byte, error) {
	name := path.Base(f.Path)
	fh, err := os.Open(filepath.Join(dir, filepath.FromSlash(f.Path)))
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	raw, err := io.ReadAll(io.LimitReader(fh, maxShownSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if len(raw) > maxShownSize {
		return nil, fmt.Errorf("%s is larger than %s: not shown here", name, humanSize(maxShownSize))
	}
	if got := sha256.Sum256(raw); hex.EncodeToString(got[:]) != f.SHA256 {
		return nil, fmt.Errorf("%s changed since it was written", name)
	}
	return raw, nil
}

// readRecordedJSON reads the bundle file f with readRecorded and decodes
// it into v.
func readRecordedJSON(dir string, f File, v any) error {
	raw, err := readRecorded(dir, f)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("decoding %s: %w", path.Base(f.Path), err)
	}
	return nil
}

// reportEntry is a custody entry as the page shows it.
type reportEntry struct {
	Seq                          int
	Time                         time.Time
	Action                       string
	Actor, OSUser, Host, Version string
	Detail                       string // indented JSON
	Change                       bool
}

func renderReport(d reportData) ([]byte, error) {
	view := struct {
		reportData
		Bytes            int64
		Entries, Changes []reportEntry
	}{reportData: d}
	for _, f := range d.Files {
		view.Bytes += f.Size
	}
	for _, rec := range d.Custody {
		cd, err := decodeData(rec.Data)
		if err != nil {
			return nil, fmt.Errorf("custody entry %d: %w", rec.Seq, err)
		}
		e := reportEntry{
			Seq: rec.Seq, Time: rec.Time, Action: rec.Type,
			Actor: cd.Actor, OSUser: cd.OSUser, Host: cd.Host, Version: cd.Version,
			Change: changeActions[rec.Type],
		}
		if len(cd.Detail) > 0 {
			var b bytes.Buffer
			if err := json.Indent(&b, cd.Detail, "", "  "); err != nil {
				return nil, fmt.Errorf("custody entry %d: %w", rec.Seq, err)
			}
			e.Detail = b.String()
		}
		view.Entries = append(view.Entries, e)
		if e.Change {
			view.Changes = append(view.Changes, e)
		}
	}
	var b bytes.Buffer
	if err := reportTemplate.Execute(&b, view); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// humanSize writes n bytes in binary units.
func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// describeSource says in a few words where a file came from.
func describeSource(s Source) string {
	var parts []string
	add := func(label, v string) {
		if v != "" {
			parts = append(parts, label+v)
		}
	}
	add("object ", s.Object)
	if s.Object == "" && s.Pod != "" {
		add("pod ", s.Namespace+"/"+s.Pod)
	}
	add("container ", s.Container)
	add("node ", s.Node)
	add("image ", s.Image)
	add("cluster ", s.Cluster)
	return strings.Join(parts, ", ")
}
