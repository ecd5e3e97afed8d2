package evidence_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"

	"kir.dev/kir/evidence"
)

// A bundle from creation to verification. The custody log's format is what
// auditors read; this pins it.
func Example() {
	tmp, err := os.MkdirTemp("", "evidence-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "inc-1")

	b, err := evidence.Create(dir, evidence.Options{
		Incident: "inc-1", Actor: "kir@example.com", Version: "v1.0.0",
		Now:    func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) },
		OSUser: "ir", Host: "laptop",
	})
	if err != nil {
		log.Fatal(err)
	}
	src := evidence.Source{Kind: "log", Namespace: "shop", Pod: "web", Container: "app", AuditID: "5f1c"}
	if _, err := b.Put("logs/app.log", strings.NewReader("GET /\n"), src); err != nil {
		log.Fatal(err)
	}
	if err := b.Custody(evidence.Entry{Action: "contain", Detail: map[string]string{"pod": "shop/web"}}); err != nil {
		log.Fatal(err)
	}
	if err := b.Seal(nil); err != nil {
		log.Fatal(err)
	}

	custody, err := os.ReadFile(filepath.Join(dir, evidence.CustodyFile))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(string(custody))
	r, err := evidence.Verify(dir, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(r.Outcome(), r.Files, "files")
	// Output:
	// {"seq":1,"time":"2026-01-02T03:04:05Z","type":"create","data":{"detail":{"incident":"inc-1"},"actor":"kir@example.com","osUser":"ir","host":"laptop","version":"v1.0.0"}}
	// {"seq":2,"time":"2026-01-02T03:04:05Z","type":"contain","data":{"detail":{"pod":"shop/web"},"actor":"kir@example.com","osUser":"ir","host":"laptop","version":"v1.0.0"},"prev":"b0d8961acf49da0ddc7046e1a9792db288d2d840625bc0fab00fbb02e5e2bd26"}
	// {"seq":3,"time":"2026-01-02T03:04:05Z","type":"seal","data":{"detail":{"files":1,"bytes":6},"actor":"kir@example.com","osUser":"ir","host":"laptop","version":"v1.0.0"},"prev":"604411250f9857bfe1f0f0f6f952f885828db37fcf3b2f871fe2757123dbb38b"}
	// signature-not-checked 5 files
}
