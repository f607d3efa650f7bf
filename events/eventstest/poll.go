package eventstest

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// Timeout bounds the kit's own waits (a projection catching up with the log) and is a fair
// deadline for a test's waits on anything in process.
const Timeout = 20 * time.Second

// maxPollInterval is the longest pause between two checks of a condition. The pause starts at a
// millisecond and doubles: a condition that is nearly true is seen at once, a slow one is not
// checked in a busy loop.
const maxPollInterval = 20 * time.Millisecond

// Poll checks cond until it returns nil or timeout has passed, and returns nil or, after the
// deadline, an error wrapping cond's last one: the reason the condition did not hold.
func Poll(timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	pause := time.Millisecond
	for {
		err := cond()
		if err == nil {
			return nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("not within %v: %w", timeout, err)
		}
		time.Sleep(min(pause, left))
		pause = min(2*pause, maxPollInterval)
	}
}

// errNotYet is the reason of a condition that says only false.
var errNotYet = errors.New("the condition does not hold")

// Eventually checks cond until it holds, and fails t with what if timeout passes first.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	err := Poll(timeout, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	})
	if err != nil {
		t.Fatalf("%s: not within %v", what, timeout)
	}
}

// EventuallyErr checks cond until it returns nil, and fails t with what and cond's last error
// (what it saw) if timeout passes first.
func EventuallyErr(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	if err := Poll(timeout, cond); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}
