package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	oteltrace "go.opentelemetry.io/otel/trace"
	"skiff.dev/events"
	"skiff.dev/events/api"
	"skiff.dev/events/client"
	"skiff.dev/events/store"
	"skiff.dev/events/telemetry"
)

// Env is the world a command runs in. Tests substitute every part of it.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Now            func() time.Time
	Getenv         func(string) string
}

// app is what every command shares: the environment, the global flags, and connections opened
// on first use (so `skiff version` or a manifest with a typo never touches the network).
type app struct {
	Env
	// connOpts are --config, --server, --creds and --tls-ca, resolved against the environment
	// and the client config file when the first connection is made.
	connOpts client.Options
	stream   string
	// identity is who the connection authenticated as (client.Identity), set by conn.
	identity  string
	timeout   time.Duration
	namespace string

	nc *nats.Conn
	st *store.Store
	// refuse ends the command with the server's refusal of one of its publishes.
	refuse context.CancelCauseFunc
	// tracing and span trace the command (trace.go); nil when it is not traced.
	tracing *telemetry.Provider
	span    oteltrace.Span
}

// commands are the constructors of the top-level commands, added by each command's file.
var commands []func(*app) *cobra.Command

// register adds a top-level command; call it from the init of the command's file.
func register(newCmd func(*app) *cobra.Command) { commands = append(commands, newCmd) }

func newRoot(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:   "skiff",
		Short: "skiff controls a Skiff cluster",
		Long: "skiff controls a Skiff cluster: it applies manifests, lists and describes objects, and reads the\n" +
			"cluster's event log, which is the cluster's only state.",
		SilenceUsage:               true,
		SilenceErrors:              true,
		SuggestionsMinimumDistance: 2,
		Args:                       cobra.ArbitraryArgs,
		PersistentPreRun:           func(cmd *cobra.Command, _ []string) { a.startTrace(cmd) },
		// The root runs only when no subcommand matched: that is an unknown command, which
		// cobra would otherwise answer with the full help and success.
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cmd.Help()
			}
			msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				msg += "; did you mean " + strings.Join(s, " or ") + "?"
			}
			return usage(cmd, "%s", msg)
		},
	}
	getenv := a.Getenv
	pf := root.PersistentFlags()
	a.connOpts.Getenv = getenv
	pf.StringVar(&a.connOpts.Config, "config", "", "client config file: servers, creds, CA (env SKIFF_CONFIG, default ~/.config/skiff/config)")
	pf.StringVar(&a.connOpts.Server, "server", "", "NATS URL(s) of the cluster, comma-separated (env SKIFF_SERVER, default "+client.DefaultServer+")")
	pf.StringVar(&a.connOpts.Creds, "creds", "", "NATS credentials file (env SKIFF_CREDS)")
	pf.StringVar(&a.connOpts.CA, "tls-ca", "", "CA certificate (PEM) of the cluster's servers (env SKIFF_CA)")
	pf.DurationVar(&a.timeout, "timeout", 30*time.Second, "how long to wait for each answer from the cluster")
	pf.StringVarP(&a.namespace, "namespace", "n", "default", "namespace of the objects")
	pf.StringVar(&a.stream, "stream", cmp.Or(getenv("SKIFF_STREAM"), store.DefaultStream), "name of the cluster's event log stream (env SKIFF_STREAM)")
	_ = pf.MarkHidden("stream")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return &usageError{cmd: cmd, err: err} })
	for _, newCmd := range commands {
		root.AddCommand(newCmd(a))
	}
	return root
}

// run executes one command line and returns the process's exit status.
func run(ctx context.Context, args []string, env Env) int {
	a := &app{Env: env}
	defer a.close()
	// A refused publish (NATS reports it asynchronously) ends the command at once, with the
	// refusal as its error, instead of leaving it to time out.
	ctx, a.refuse = context.WithCancelCause(ctx)
	defer a.refuse(nil)
	root := newRoot(a)
	root.SetArgs(args)
	root.SetIn(env.Stdin)
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	_, err := root.ExecuteContextC(ctx)
	a.endTrace(err)
	if err == nil {
		return 0
	}
	if cause := context.Cause(ctx); errors.Is(cause, events.ErrPermissionDenied) {
		err = cause
	}
	return a.report(err)
}

func (a *app) close() {
	if a.nc != nil {
		a.nc.Close()
	}
}

// usageError is a command line that does not make sense: it earns a hint at the help.
type usageError struct {
	cmd *cobra.Command
	err error
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usage(cmd *cobra.Command, format string, args ...any) error {
	return &usageError{cmd: cmd, err: fmt.Errorf(format, args...)}
}

// statusError ends the command with its own exit status where report would say 1: `skiff
// events diff` ends with 1 for "differences" and so with 2 for failures, as kubectl diff does.
type statusError struct {
	err  error
	code int
}

func (e *statusError) Error() string { return e.err.Error() }
func (e *statusError) Unwrap() error { return e.err }

// Exit statuses.
const (
	exitError       = 1
	exitUsage       = 2
	exitInterrupted = 130
)

// errReported is returned by a command that already printed its errors (one per object, as
// kubectl does when some of several objects fail): it only sets the exit status.
var errReported = errors.New("reported")

// report prints err the way kubectl would and returns the exit status: one line, or for a
// server-side validation error its message and one indented line per cause.
func (a *app) report(err error) int {
	var ue *usageError
	var ae *api.Error
	var se *statusError
	switch {
	case errors.As(err, &se):
		if code := a.report(se.err); code != exitError {
			return code
		}
		return se.code
	case errors.Is(err, errReported):
		return exitError
	case errors.As(err, &ue):
		fmt.Fprintf(a.Stderr, "error: %s\nSee '%s --help' for usage.\n", message(ue.err), ue.cmd.CommandPath())
		return exitUsage
	case errors.As(err, &ae):
		code := cmp.Or(ae.Code, "Internal")
		fmt.Fprintf(a.Stderr, "Error from server (%s): %s\n", code, message(ae))
		return exitError
	case errors.Is(err, context.Canceled):
		return exitInterrupted
	}
	fmt.Fprintf(a.Stderr, "error: %s\n", message(err))
	return exitError
}
