package nodeagent

import (
	"context"
	"log/slog"

	"github.com/nats-io/nats.go"

	"skiff.dev/services/nodeagent/internal/logs"
)

// ServeLogs answers `skiff logs` for node from the container logs under dir (default the
// runtime's, /var/log/skiff/pods) until ctx ends. Run serves logs itself; this is for programs
// that want only the logs server, such as skiff's tests.
func ServeLogs(ctx context.Context, nc *nats.Conn, node, dir string, logger *slog.Logger) error {
	return logs.Serve(ctx, nc, node, dir, logger)
}
