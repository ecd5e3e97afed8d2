package journal_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"kir.dev/kir/internal/journal"
)

// The file format is what evidence bundles carry; this pins it.
func Example() {
	dir, err := os.MkdirTemp("", "journal-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	now := func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }
	s, err := journal.Open(dir, journal.WithClock(now))
	if err != nil {
		log.Fatal(err)
	}

	w, err := s.Create("20260102t030405-isolate")
	if err != nil {
		log.Fatal(err)
	}
	if _, err := w.Append("run.start", map[string]string{"playbook": "isolate"}); err != nil {
		log.Fatal(err)
	}
	if _, err := w.Append("step.done", map[string]any{"step": "cordon", "ok": true}); err != nil {
		log.Fatal(err)
	}
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}

	b, err := os.ReadFile(filepath.Join(s.Dir(), "20260102t030405-isolate.jsonl"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(string(b))
	// Output:
	// {"seq":1,"time":"2026-01-02T03:04:05Z","type":"run.start","data":{"playbook":"isolate"}}
	// {"seq":2,"time":"2026-01-02T03:04:05Z","type":"step.done","data":{"ok":true,"step":"cordon"},"prev":"2bd886b88a645c86451d0275b32ffe3d39195279ea0c1c8b27a222692f8e1cb1"}
}
