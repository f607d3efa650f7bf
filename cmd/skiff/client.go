package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"

	"github.com/nats-io/nats.go"

	"skiff.dev/events"
	"skiff.dev/events/api"
	"skiff.dev/events/client"
	"skiff.dev/events/store"
)

// conn connects to the cluster's NATS on first use, the way every Skiff program does.
func (a *app) conn() (*nats.Conn, error) {
	if a.nc != nil {
		return a.nc, nil
	}
	o := a.connOpts
	o.Name = "skiff"
	o.OnRefused = a.refuse
	identity, err := o.Identity()
	if err != nil {
		return nil, err
	}
	nc, err := client.Connect(o)
	if err != nil {
		return nil, err
	}
	a.identity = cmp.Or(identity, api.Anonymous)
	a.nc = nc
	return nc, nil
}

// server names the cluster's NATS URL(s) in messages.
func (a *app) server() string { return a.connOpts.URL() }

// logStore opens the event log for reading on first use. It only attaches: the CLI never
// creates or changes the stream (package bootstrap does).
func (a *app) logStore(ctx context.Context) (*store.Store, error) {
	if a.st != nil {
		return a.st, nil
	}
	nc, err := a.conn()
	if err != nil {
		return nil, err
	}
	ictx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	st, err := store.Attach(ictx, nc, store.Config{Stream: a.stream})
	if errors.Is(err, events.ErrNotFound) {
		return nil, errorf(events.ErrNotFound, "the cluster at %s has no event log (stream %s): has it been started (skiff up)?", a.server(), a.stream)
	}
	if err != nil {
		return nil, errorf(events.ErrUnavailable, "open the event log (stream %s at %s): %v", a.stream, a.server(), err)
	}
	a.st = st
	return st, nil
}

// call sends a command and returns the scheduler's answer. A failure the scheduler reports is
// in the Response (Error, alongside whatever Results happened); the error is for no answer.
func (a *app) call(ctx context.Context, subject string, req any) (*api.Response, error) {
	nc, err := a.conn()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	var resp api.Response
	// The subject names who sends the command; the server lets a user send only as itself.
	if err := api.Call(ctx, nc, api.CommandSubject(subject, a.identity), req, &resp); err != nil {
		return nil, a.noAnswer(ctx, subject, err)
	}
	return &resp, nil
}

// answer is a whole query answer, its chunks put together.
type answer struct {
	seq     uint64
	columns []string
	rows    [][]string
	items   []json.RawMessage
}

// query runs a query and gathers its chunks.
func (a *app) query(ctx context.Context, req api.GetRequest) (*answer, error) {
	nc, err := a.conn()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	var ans answer
	err = api.Get(ctx, nc, req, func(c *api.GetChunk) error {
		ans.seq = max(ans.seq, c.Seq)
		if c.Columns != nil {
			ans.columns = c.Columns
		}
		ans.rows = append(ans.rows, c.Rows...)
		ans.items = append(ans.items, c.Items...)
		return nil
	})
	if err != nil {
		return nil, a.noAnswer(ctx, api.SubjectGet, err)
	}
	return &ans, nil
}

// noAnswer words the failure to get an answer: nobody listening, nobody taking the request (it
// was sent again and again: no scheduler is reachable) and a scheduler that took it but did not
// answer in time need different advice.
func (a *app) noAnswer(ctx context.Context, subject string, err error) error {
	var ae *api.Error
	if errors.As(err, &ae) || !errors.Is(err, events.ErrUnavailable) {
		return err
	}
	if ctx.Err() != nil {
		if errors.Is(ctx.Err(), context.Canceled) {
			return ctx.Err()
		}
		var na *api.NoAnswerError
		if errors.As(err, &na) && !na.Taken {
			return errorf(events.ErrUnavailable, "no scheduler took %s within %s (sent %d times): is skiff-scheduler (or skiff up) running?",
				subject, a.timeout, na.Sends)
		}
		return errorf(events.ErrUnavailable, "no answer to %s within %s: the scheduler that took it may be busy or still reading the log; try again or raise --timeout", subject, a.timeout)
	}
	return errorf(events.ErrUnavailable, "no scheduler is answering %s: is skiff-scheduler (or skiff up) running?", subject)
}
