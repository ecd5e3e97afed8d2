package falco

import (
	"os"
	"path/filepath"
	"testing"
)

// AddFileSeeds adds every file pattern matches to f's corpus; it fails
// when none does. The fuzz targets in and out of package falco seed from
// testdata this way.
func AddFileSeeds(f *testing.F, pattern string) {
	f.Helper()
	paths, _ := filepath.Glob(pattern)
	if len(paths) == 0 {
		f.Fatalf("no seed matches %s", pattern)
	}
	for _, path := range paths {
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}
