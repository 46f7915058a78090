// Package testbin builds the drawbridge binary for tests that run it as
// real processes (agent end to end, replicas on PostgreSQL): once per test
// binary, into a temporary directory that Cleanup removes.
package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var (
	once     sync.Once
	dir      string
	path     string
	buildErr error
)

// Drawbridge returns the path of cmd/drawbridge built from this module,
// building it on first use; it fails t if the build fails.
func Drawbridge(t testing.TB) string {
	t.Helper()
	once.Do(func() {
		dir, buildErr = os.MkdirTemp("", "drawbridge-bin-")
		if buildErr != nil {
			return
		}
		path = filepath.Join(dir, "drawbridge")
		out, err := exec.Command("go", "build", "-o", path, "github.com/drawbridge/drawbridge/cmd/drawbridge").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return path
}

// Cleanup removes the built binary; call it from TestMain after m.Run.
func Cleanup() {
	if dir != "" {
		os.RemoveAll(dir)
	}
}
