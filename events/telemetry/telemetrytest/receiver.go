// Package telemetrytest is an in-process OTLP trace receiver for tests: the collector's
// TraceService over gRPC and OTLP/HTTP on 127.0.0.1, keeping every span it is sent.
package telemetrytest

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// Span is one received span with the resource and scope it came from.
type Span struct {
	Service, Instance string
	// Resource is every attribute of the resource, Scope the instrumentation scope's name.
	Resource        map[string]string
	Scope           string
	TraceID, SpanID string
	ParentID        string
	Name            string
	Kind            tracepb.Span_SpanKind
	// Flags are OTLP's: the W3C trace flags and whether the parent is remote.
	Flags uint32
	// Links are the linked spans as trace id/span id.
	Links        []Link
	DroppedLinks uint32
	Attrs        map[string]string
	Start, End   uint64
}

// Link is one span link.
type Link struct{ TraceID, SpanID string }

// Receiver keeps the spans it receives. Safe for concurrent use.
type Receiver struct {
	collectortrace.UnimplementedTraceServiceServer
	// GRPC is the gRPC endpoint (host:port), HTTP the OTLP/HTTP base URL.
	GRPC, HTTP string

	mu      sync.Mutex
	spans   []Span
	count   int
	discard bool
}

// New starts a receiver on 127.0.0.1, stopped at cleanup.
func New(t testing.TB) *Receiver {
	t.Helper()
	return NewListen(t, net.Listen)
}

// NewListen starts a receiver on listeners that listen makes for "tcp" (127.0.0.1:0 in the
// namespace it chooses, say), stopped at cleanup.
func NewListen(t testing.TB, listen func(network, address string) (net.Listener, error)) *Receiver {
	return NewListenOn(t, listen, "127.0.0.1")
}

// NewListenOn is NewListen on host's address: processes in other network namespaces reach
// the receiver there.
func NewListenOn(t testing.TB, listen func(network, address string) (net.Listener, error), host string) *Receiver {
	t.Helper()
	r, stop, err := Serve(listen, host, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return r
}

// Serve starts a receiver outside a test (a benchmark's); keep false counts spans without
// keeping them. stop ends it.
func Serve(listen func(network, address string) (net.Listener, error), host string, keep bool) (r *Receiver, stop func(), err error) {
	r = &Receiver{discard: !keep}
	gl, err := listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return nil, nil, fmt.Errorf("listen for OTLP/gRPC: %w", err)
	}
	gs := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(gs, r)
	go func() { _ = gs.Serve(gl) }()
	r.GRPC = gl.Addr().String()

	hl, err := listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		gs.Stop()
		return nil, nil, fmt.Errorf("listen for OTLP/HTTP: %w", err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(r.serveHTTP)}
	go func() { _ = hs.Serve(hl) }()
	r.HTTP = "http://" + hl.Addr().String()
	return r, func() { gs.Stop(); _ = hs.Close() }, nil
}

// Export implements the collector's TraceService.
func (r *Receiver) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	r.add(req)
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

func (r *Receiver) serveHTTP(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path != "/v1/traces" || req.Method != http.MethodPost {
		http.NotFound(w, req)
		return
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var er collectortrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(body, &er); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.add(&er)
	out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

func (r *Receiver) add(req *collectortrace.ExportTraceServiceRequest) {
	var got []Span
	for _, rs := range req.ResourceSpans {
		res := map[string]string{}
		for _, kv := range rs.GetResource().GetAttributes() {
			res[kv.Key] = value(kv.Value)
		}
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				sp := Span{
					Service: res["service.name"], Instance: res["service.instance.id"], Resource: res,
					Scope:   ss.GetScope().GetName(),
					TraceID: hex.EncodeToString(s.TraceId), SpanID: hex.EncodeToString(s.SpanId),
					ParentID: hex.EncodeToString(s.ParentSpanId), Name: s.Name, Kind: s.Kind, Flags: s.Flags,
					DroppedLinks: s.DroppedLinksCount,
					Attrs:        map[string]string{}, Start: s.StartTimeUnixNano, End: s.EndTimeUnixNano,
				}
				for _, kv := range s.Attributes {
					sp.Attrs[kv.Key] = value(kv.Value)
				}
				for _, l := range s.Links {
					sp.Links = append(sp.Links, Link{TraceID: hex.EncodeToString(l.TraceId), SpanID: hex.EncodeToString(l.SpanId)})
				}
				got = append(got, sp)
			}
		}
	}
	r.mu.Lock()
	r.count += len(got)
	if !r.discard {
		r.spans = append(r.spans, got...)
	}
	r.mu.Unlock()
}

// Count is how many spans were received.
func (r *Receiver) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.count
}

// Spans returns a copy of every span received so far.
func (r *Receiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Span(nil), r.spans...)
}

// Env is the environment that points a process's exporter at r over protocol (grpc or
// http/protobuf).
func (r *Receiver) Env(protocol string) []string {
	endpoint := r.HTTP
	if protocol == "grpc" {
		endpoint = "http://" + r.GRPC
	}
	return []string{
		"OTEL_EXPORTER_OTLP_ENDPOINT=" + endpoint,
		"OTEL_EXPORTER_OTLP_PROTOCOL=" + protocol,
		"OTEL_EXPORTER_OTLP_INSECURE=true",
		// Export at once, so tests poll seconds, not the default 5 s batches.
		"OTEL_BSP_SCHEDULE_DELAY=100",
	}
}
