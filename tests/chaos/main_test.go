package chaos

import (
	"os"
	"testing"

	"skiff.dev/tests/cluster"
)

func TestMain(m *testing.M) { os.Exit(cluster.Main(m)) }
