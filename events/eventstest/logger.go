package eventstest

import (
	"log/slog"
	"testing"
)

// Logger logs to t at debug level: shown with -v, or when t fails.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}
