package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Jaeger all-in-one for `skiff up --jaeger`: the binary `make jaeger` builds from Jaeger's Go
// module (tools/go.mod), run with a configuration of our own so it listens on loopback only
// and on nothing but what the demo needs, and keeps traces in memory.
const (
	jaegerUI       = "127.0.0.1:16686" // the UI and the query API (/api/services, /api/traces)
	jaegerOTLPGRPC = "127.0.0.1:4317"
	jaegerOTLPHTTP = "127.0.0.1:4318"
	// jaegerQueryGRPC is the query service's gRPC port, which Jaeger always opens; loopback.
	jaegerQueryGRPC = "127.0.0.1:16685"
)

// jaegerConfig is Jaeger v2's collector configuration: OTLP in, memory storage, the query
// service; no Jaeger, Zipkin or sampling receivers, no internal metrics port.
const jaegerConfig = `service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    resource:
      service.name: jaeger
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: ` + jaegerUI + `
    grpc:
      endpoint: ` + jaegerQueryGRPC + `
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 100000
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: ` + jaegerOTLPGRPC + `
      http:
        endpoint: ` + jaegerOTLPHTTP + `
processors:
  batch:
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
`

// jaegerEnv is what points every part's OTLP exporter at Jaeger: the standard variables, which
// the OpenTelemetry set-up of each part reads.
var jaegerEnv = [][2]string{
	{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://" + jaegerOTLPHTTP},
	{"OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"},
	{"OTEL_TRACES_EXPORTER", "otlp"},
}

// jaegerReady bounds Jaeger's start-up.
const jaegerReady = 30 * time.Second

// jaegerProc is a running Jaeger.
type jaegerProc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// findJaeger is bin if set, else jaeger next to this executable (make build puts both in bin/),
// else jaeger on PATH.
func findJaeger(bin string) (string, error) {
	if bin != "" {
		return bin, nil
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "jaeger")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("jaeger"); err == nil {
		return p, nil
	}
	return "", errors.New("no jaeger binary next to skiff or on PATH: build it with `make jaeger` (bin/jaeger) or name it with --jaeger-bin")
}

// startJaeger runs Jaeger with its configuration and log under dir and waits until its query
// API answers. It runs until stop, not until ctx ends: the parts flush their last spans to it
// as they stop, after ctx has ended. It ends with this process if that dies first.
func startJaeger(ctx context.Context, bin, dir string, log *slog.Logger) (*jaegerProc, error) {
	bin, err := findJaeger(bin)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("jaeger: %w", err)
	}
	cfgPath := filepath.Join(dir, "jaeger.yaml")
	if err := os.WriteFile(cfgPath, []byte(jaegerConfig), 0o644); err != nil {
		return nil, fmt.Errorf("jaeger: %w", err)
	}
	logPath := filepath.Join(dir, "jaeger.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("jaeger: %w", err)
	}
	cmd := exec.Command(bin, "--config", "file:"+cfgPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// A skiff up that is killed must not leave Jaeger holding the ports.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start jaeger (%s): %w", bin, err)
	}
	j := &jaegerProc{cmd: cmd, done: make(chan struct{})}
	go func() {
		j.err = cmd.Wait()
		logFile.Close()
		close(j.done)
	}()
	log.Info("jaeger started", "pid", cmd.Process.Pid, "ui", "http://"+jaegerUI, "log", logPath)

	deadline := time.Now().Add(jaegerReady)
	client := &http.Client{Timeout: time.Second}
	for {
		resp, err := client.Get("http://" + jaegerUI + "/api/services")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return j, nil
			}
		}
		select {
		case <-j.done:
			tail, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("jaeger exited at start (%v); is another Jaeger or OTLP receiver on %s, %s or %s? its log:\n%s",
				j.err, jaegerUI, jaegerOTLPGRPC, jaegerOTLPHTTP, lastLines(string(tail), 10))
		case <-ctx.Done():
			j.stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			j.stop()
			return nil, fmt.Errorf("jaeger's query API did not answer on %s within %v (log %s)", jaegerUI, jaegerReady, logPath)
		}
	}
}

// stop ends Jaeger and waits for it.
func (j *jaegerProc) stop() {
	select {
	case <-j.done:
		return
	default:
	}
	_ = j.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-j.done:
	case <-time.After(5 * time.Second):
		_ = j.cmd.Process.Kill()
		<-j.done
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
