package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"go.opentelemetry.io/otel/codes"
	oteltrace "go.opentelemetry.io/otel/trace"

	"skiff.dev/events/telemetry"
)

// startTrace starts the command's span when the OTEL_* environment asks for traces: a child of
// TRACEPARENT if the environment has one (a script's own trace), else a new trace. Commands
// send its traceparent with their requests, so admission and everything after continue it.
// `skiff up` is not traced as a command: each part it runs traces itself, under its own name.
func (a *app) startTrace(cmd *cobra.Command) {
	if cmd.Name() == "up" {
		return
	}
	tp, err := telemetry.Setup(cmd.Context(), telemetry.Config{Service: telemetry.ServiceCLI})
	if err != nil {
		fmt.Fprintf(a.Stderr, "warning: not tracing this command: %v\n", err)
		return
	}
	if !tp.Enabled() {
		return
	}
	a.tracing = tp
	ctx, span := telemetry.Start(cmd.Context(), tp.Tracer(), cmd.CommandPath(), a.Getenv("TRACEPARENT"),
		oteltrace.WithSpanKind(oteltrace.SpanKindClient))
	a.span = span
	cmd.SetContext(ctx)
}

// endTrace ends the command's span with its outcome and sends what is buffered, for a few
// seconds at most.
func (a *app) endTrace(err error) {
	if a.span == nil {
		return
	}
	if err != nil {
		a.span.SetStatus(codes.Error, err.Error())
	}
	a.span.End()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.tracing.Shutdown(ctx); err != nil {
		fmt.Fprintf(a.Stderr, "warning: %v\n", err)
	}
}

// traceparent is what a command sends with its request: its span's, or with tracing off the
// environment's TRACEPARENT (so a caller's trace still reaches the cluster).
func (a *app) traceparent(ctx context.Context) string {
	if tp := telemetry.Traceparent(ctx); tp != "" {
		return tp
	}
	return a.Getenv("TRACEPARENT")
}
