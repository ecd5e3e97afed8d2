package spool_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"kir.dev/kir/internal/spool"
)

// The segment format is what a restarted kir must read; this pins it.
func Example() {
	dir, err := os.MkdirTemp("", "spool-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	now := func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }
	s, pending, err := spool.Open(dir, spool.WithClock(now))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("pending:", len(pending))
	it, err := s.Add(context.Background(), []byte(`{"rule":"shell"}`))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("added:", it.ID, it.Added)
	if err := s.Done(it.ID, []byte("run-1 ok")); err != nil {
		log.Fatal(err)
	}
	if err := s.Close(); err != nil {
		log.Fatal(err)
	}

	b, err := os.ReadFile(filepath.Join(dir, "0000000000000001.seg"))
	if err != nil {
		log.Fatal(err)
	}
	// The segment header; a frame with the checkpoint Open wrote (next id
	// 1, no ids); the add's frame; the done's frame, written by Close.
	fmt.Print(hex.Dump(b))
	// Output:
	// pending: 0
	// added: 1 2026-01-02 03:04:05 +0000 UTC
	// 00000000  4b 49 52 53 50 4f 4f 4c  01 00 00 00 6e 69 3e d4  |KIRSPOOL....ni>.|
	// 00000010  f5 6b 69 72 11 00 00 00  b3 aa d6 01 03 01 00 00  |.kir............|
	// 00000020  00 00 00 00 00 00 00 00  00 00 00 00 00 f5 6b 69  |..............ki|
	// 00000030  72 25 00 00 00 15 71 11  9f 01 01 00 00 00 00 00  |r%....q.........|
	// 00000040  00 00 00 32 96 1c f2 ca  86 18 10 00 00 00 7b 22  |...2..........{"|
	// 00000050  72 75 6c 65 22 3a 22 73  68 65 6c 6c 22 7d f5 6b  |rule":"shell"}.k|
	// 00000060  69 72 15 00 00 00 cb 51  53 ce 02 01 00 00 00 00  |ir.....QS.......|
	// 00000070  00 00 00 08 00 00 00 72  75 6e 2d 31 20 6f 6b     |.......run-1 ok|
}
