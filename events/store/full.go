package store

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"skiff.dev/events"
)

// ErrFull is what an append returns when the log has no room for the event: the stream holds as
// many bytes as its limit allows (bootstrap's MaxBytes, `skiff cluster bootstrap --max-bytes`), or
// the server's JetStream storage is exhausted. Such an error is also of class
// events.ErrFailedPrecondition: retrying does not help until an operator makes room, and nothing
// was written. The stream discards new events rather than old ones (the log is the only state),
// so history is never dropped to make room.
var ErrFull = errors.New("the event log is full")

// JetStream's error codes for a store without room (nats.go names no constant for them).
const (
	// errCodeStoreFailed is JSStreamStoreFailedF, whose description is the store's error:
	// "maximum bytes exceeded" when a stream with discard-new policy is at its MaxBytes.
	errCodeStoreFailed jetstream.ErrorCode = 10077
	// errCodeInsufficientResources: the server's JetStream storage (max_file_store, by default
	// 75% of the disk's free space when the server started) is used up.
	errCodeInsufficientResources jetstream.ErrorCode = 10023
	// errCodeAccountResourcesExceeded: the account's JetStream storage limit is reached.
	errCodeAccountResourcesExceeded jetstream.ErrorCode = 10002
)

// fullKind tells which limit a full-log error hit.
type fullKind int

const (
	fullStream fullKind = iota // the stream's MaxBytes
	fullServer                 // the server's or the account's JetStream storage
)

// fullError is an append refused for lack of room. Its text says which limit was hit and what
// an operator does about it; it is ErrFull and events.ErrFailedPrecondition.
type fullError struct {
	kind fullKind
	// limit and used are the stream's MaxBytes and size, when known (fullStream only).
	limit, used int64
	cause       error
}

func (e *fullError) Error() string {
	switch e.kind {
	case fullServer:
		return fmt.Sprintf("%v: the NATS server's JetStream storage is used up (%v): free disk space on the server, "+
			"or raise its jetstream max_file_store (by default 75%% of the disk space free when it started), then restart it", ErrFull, e.cause)
	}
	limit := "its limit"
	if e.limit > 0 {
		limit = fmt.Sprintf("its limit of %s", FormatBytes(e.limit))
		if e.used > 0 {
			limit = fmt.Sprintf("%s, it holds %s", limit, FormatBytes(e.used))
		}
	}
	return fmt.Sprintf("%v (%s; old events are never dropped to make room): raise the limit with "+
		"`skiff cluster bootstrap --max-bytes SIZE` (admin credentials; 0 lifts it)", ErrFull, limit)
}

func (e *fullError) Unwrap() []error { return []error{ErrFull, events.ErrFailedPrecondition} }

// asFull returns the full-log error err stands for, or nil when err is another failure.
func asFull(err error) *fullError {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return nil
	}
	switch {
	case apiErr.ErrorCode == errCodeStoreFailed && strings.Contains(apiErr.Description, "maximum bytes exceeded"):
		return &fullError{kind: fullStream, cause: err}
	case apiErr.ErrorCode == errCodeInsufficientResources, apiErr.ErrorCode == errCodeAccountResourcesExceeded:
		return &fullError{kind: fullServer, cause: err}
	}
	return nil
}

// explainFull fills in the stream's limit and size, which the server's answer does not say, so
// the error names the number an operator has to raise. Best effort: the stream's info is a read,
// which works while the log is full.
func (s *Store) explainFull(ctx context.Context, err error) error {
	var fe *fullError
	if !errors.As(err, &fe) || fe.kind != fullStream {
		return err
	}
	if info, ierr := s.stream.Info(ctx); ierr == nil {
		fe.limit, fe.used = info.Config.MaxBytes, int64(info.State.Bytes)
	}
	return err
}

// FormatBytes writes a size as people read it: "512 B", "48 KiB", "64 MiB", "1.5 GiB".
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	v := float64(n) / float64(div)
	s := fmt.Sprintf("%.1f", v)
	s = strings.TrimSuffix(s, ".0")
	return s + " " + string("KMGTP"[exp]) + "iB"
}
