package main

import (
	"errors"
	"fmt"
	"strings"

	"skiff.dev/events"
	"skiff.dev/events/api"
	"skiff.dev/events/table"
)

// classes are the error classes whose names wrapping appends to messages.
var classes = []error{events.ErrNotFound, events.ErrAlreadyExists, events.ErrConflict, events.ErrInvalidArgument,
	events.ErrFailedPrecondition, events.ErrUnavailable}

// message is err's text for a person. Errors in Skiff end with their class ("...: invalid
// argument") so that errors.Is works across packages; the class says nothing a person needs
// after a precise message, so it is dropped here, at the edge.
func message(err error) string {
	msg := err.Error()
	var ae *api.Error
	if errors.As(err, &ae) {
		msg = ae.Error()
	}
	for _, c := range classes {
		if errors.Is(err, c) {
			msg = strings.TrimSuffix(msg, ": "+c.Error())
			// api.Call ends its "is the scheduler running?" question with the class.
			if s, ok := strings.CutSuffix(msg, "? "+c.Error()); ok {
				msg = s + "?"
			}
		}
	}
	return msg
}

// plain is an error with a class and a message that does not repeat the class.
type plain struct {
	msg   string
	class error
}

func (e *plain) Error() string { return e.msg }
func (e *plain) Unwrap() error { return e.class }

func errorf(class error, format string, args ...any) error {
	return &plain{msg: fmt.Sprintf(format, args...), class: class}
}

// notFound is kubectl's answer for a named object that does not exist, worded as if the server
// said it, as kubectl does.
func notFound(res table.Resource, name string) error {
	return &api.Error{Code: "NotFound", Message: fmt.Sprintf("%s %q not found", res.Qualified(), name)}
}
