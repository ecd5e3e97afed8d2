package evidence

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
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
