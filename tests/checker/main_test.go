package checker

import (
	"os"
	"testing"
)

// TestMain removes what the tests built once per process: the binaries of TestRealLog and the
// log of BenchmarkCheck.
func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	if benchStop != nil {
		benchStop()
	}
	os.Exit(code)
}
