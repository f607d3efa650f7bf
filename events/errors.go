package events

import (
	"errors"
	"fmt"
)

// A handful of error classes, tested with errors.Is. Every package of Skiff wraps one of these with
// context, so callers (and the CLI's exit codes) can tell what kind of failure happened.
var (
	ErrNotFound           = errors.New("not found")
	ErrAlreadyExists      = errors.New("already exists")
	ErrConflict           = errors.New("conflict")
	ErrInvalidArgument    = errors.New("invalid argument")
	ErrFailedPrecondition = errors.New("failed precondition")
	ErrUnavailable        = errors.New("unavailable")
	// ErrPermissionDenied: the server refused the credentials or the action they attempted.
	ErrPermissionDenied = errors.New("permission denied")
	// ErrFenced: a leader's write was refused because a newer leader term has begun (see
	// store.Fenced). Not a conflict: the writer is no longer the leader and must stop.
	ErrFenced = errors.New("fenced by a newer leader term")
)

// Code names the class of err for the wire: one of "NotFound", "AlreadyExists", "Conflict",
// "InvalidArgument", "FailedPrecondition", "Unavailable", "PermissionDenied", "Fenced" or "Internal".
func Code(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrNotFound):
		return "NotFound"
	case errors.Is(err, ErrAlreadyExists):
		return "AlreadyExists"
	case errors.Is(err, ErrConflict):
		return "Conflict"
	case errors.Is(err, ErrInvalidArgument):
		return "InvalidArgument"
	case errors.Is(err, ErrFailedPrecondition):
		return "FailedPrecondition"
	case errors.Is(err, ErrUnavailable):
		return "Unavailable"
	case errors.Is(err, ErrPermissionDenied):
		return "PermissionDenied"
	case errors.Is(err, ErrFenced):
		return "Fenced"
	}
	return "Internal"
}

// ClassOf is the inverse of Code: the error class a wire code names, or nil for "Internal".
func ClassOf(code string) error {
	switch code {
	case "NotFound":
		return ErrNotFound
	case "AlreadyExists":
		return ErrAlreadyExists
	case "Conflict":
		return ErrConflict
	case "InvalidArgument":
		return ErrInvalidArgument
	case "FailedPrecondition":
		return ErrFailedPrecondition
	case "Unavailable":
		return ErrUnavailable
	case "PermissionDenied":
		return ErrPermissionDenied
	case "Fenced":
		return ErrFenced
	}
	return nil
}

// Errorf is fmt.Errorf whose result is also of class (errors.Is(err, class)) without the class's
// name in its text: for messages people read, such as "no scheduler is answering".
func Errorf(class error, format string, args ...any) error {
	return &classed{err: fmt.Errorf(format, args...), class: class}
}

type classed struct {
	err   error
	class error
}

func (e *classed) Error() string   { return e.err.Error() }
func (e *classed) Unwrap() []error { return []error{e.class, e.err} }
