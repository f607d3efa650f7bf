package events

import "errors"

// A handful of error classes, tested with errors.Is. Every package of Skiff wraps one of these with
// context, so callers (and the CLI's exit codes) can tell what kind of failure happened.
var (
	ErrNotFound           = errors.New("not found")
	ErrAlreadyExists      = errors.New("already exists")
	ErrConflict           = errors.New("conflict")
	ErrInvalidArgument    = errors.New("invalid argument")
	ErrFailedPrecondition = errors.New("failed precondition")
	ErrUnavailable        = errors.New("unavailable")
)

// Code names the class of err for the wire: one of "NotFound", "AlreadyExists", "Conflict",
// "InvalidArgument", "FailedPrecondition", "Unavailable" or "Internal".
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
	}
	return nil
}
