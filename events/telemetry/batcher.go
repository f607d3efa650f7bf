package telemetry

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// Span is one finished span for a SpanBatcher: what it was, when, and what caused it. Record
// reads it and keeps nothing of it but strings, so the caller may reuse it and its slices.
type Span struct {
	Name string
	// Kind is the span kind; the zero value is internal, as the SDK makes it.
	Kind trace.SpanKind
	// Parent is the span's parent, remote (parsed from an event's traceparent) or one Record
	// returned; the zero value makes the span a root of a new trace.
	Parent     trace.SpanContext
	Start, End time.Time
	Attributes []attribute.KeyValue
	// Links beyond MaxLinks are dropped and counted as the span's dropped links.
	Links []trace.Link
}

// BatcherConfig configures a SpanBatcher; the zero value works (a new trace per root, every
// span the parent samples or every root, Skiff's batch sizes, the SDK's delays).
type BatcherConfig struct {
	// Resource and Scope name who made the spans: the Provider's resource and tracer name.
	Resource *resource.Resource
	Scope    string
	// Sampler decides spans as the SDK's provider would; nil is the SDK's default
	// (parentbased_always_on), decided without calling a sampler.
	Sampler sdktrace.Sampler
	// BatchSize is how many spans one export request carries (default 2,048); QueueSize how
	// many spans may wait for export before new ones are dropped (default 16,384).
	BatchSize, QueueSize int
	// Delay is the longest a recorded span waits before it is exported (default 5 s);
	// Timeout bounds one export (default 30 s).
	Delay, Timeout time.Duration
	// OnError hears of failed exports (default: dropped silently, counted in Stats).
	OnError func(error)
}

// BatcherStats counts a SpanBatcher's spans since it started.
type BatcherStats struct {
	// Exported spans reached the collector; Dropped found the queue full (or the batcher shut
	// down); Failed were in an export request that failed.
	Exported, Dropped, Failed uint64
}

// SpanBatcher records finished spans straight into OTLP export requests, outside the SDK's span
// machinery, for a part that makes spans by the thousand a second (the scheduling loop: three
// a pod). It keeps what the issue of tracing asks of every span (the same wire format,
// resource, scope, IDs, parents, links, attributes and sampling decision as the SDK) and drops
// what such a part never uses: a live span object per span, its snapshot for the processor,
// and the conversion of that snapshot into OTLP, which together were most of tracing's cost
// (docs/bench/tracing.md).
//
// Record appends the span to the batch being filled, built from memory reused batch after
// batch (no allocation per span once warm). A full batch goes to a bounded queue, and one
// goroutine hands each to the OTLP client (otlptrace.Client, which sends it with the endpoint,
// headers, timeout, compression and TLS of the OTEL_* environment); a batch that finds the
// queue full is dropped and counted (Stats), never waited for. A partial batch is exported
// after Delay, and ForceFlush and Shutdown export everything recorded before them.
//
// A SpanBatcher is safe for concurrent use; the nil *SpanBatcher records nothing.
type SpanBatcher struct {
	client    otlptrace.Client
	resource  *resourcepb.Resource
	schemaURL string
	scope     *commonpb.InstrumentationScope
	sampler   sdktrace.Sampler
	batchSize int
	delay     time.Duration
	timeout   time.Duration
	onError   func(error)

	mu     sync.Mutex
	cur    *spanBatch
	free   []*spanBatch
	closed bool

	queue   chan *spanBatch
	flushes chan chan struct{}
	stop    chan struct{}
	done    chan struct{}

	exported, dropped, failed atomic.Uint64
}

// Skiff's defaults where BatcherConfig leaves a size or delay unset: the batch processor's
// (telemetry.go) and the SDK's delays.
const (
	defaultDelay   = 5 * time.Second
	defaultTimeout = 30 * time.Second
)

// NewSpanBatcher starts a batcher exporting through client, which it starts and, at Shutdown,
// stops. It fails only if the client cannot start.
func NewSpanBatcher(ctx context.Context, client otlptrace.Client, cfg BatcherConfig) (*SpanBatcher, error) {
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = maxExportBatchSize
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = maxQueueSize
	}
	if cfg.BatchSize > cfg.QueueSize {
		cfg.BatchSize = cfg.QueueSize
	}
	if cfg.Delay <= 0 {
		cfg.Delay = defaultDelay
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = defaultTimeout
	}
	if err := client.Start(ctx); err != nil {
		return nil, fmt.Errorf("start OTLP client: %w", err)
	}
	b := &SpanBatcher{
		client:    client,
		resource:  resourceProto(cfg.Resource),
		scope:     &commonpb.InstrumentationScope{Name: cfg.Scope},
		sampler:   cfg.Sampler,
		batchSize: cfg.BatchSize,
		delay:     cfg.Delay,
		timeout:   cfg.Timeout,
		onError:   cfg.OnError,
		// The batches waiting hold QueueSize spans at most (the one being filled is not
		// counted, as the SDK's queue does not count the batch it exports).
		queue:   make(chan *spanBatch, max(1, cfg.QueueSize/cfg.BatchSize)),
		flushes: make(chan chan struct{}),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	if cfg.Resource != nil {
		b.schemaURL = cfg.Resource.SchemaURL()
	}
	go b.run()
	return b, nil
}

// Record records s, if sampled, and returns its span context: the parent's trace (or a new
// one) and a new span id, sampled as the sampler decided. The context is returned whether the
// span was sampled or not, so the events it causes carry it either way, as the SDK's
// non-recording spans do. A nil batcher records nothing and returns the zero context.
func (b *SpanBatcher) Record(s *Span) trace.SpanContext {
	if b == nil {
		return trace.SpanContext{}
	}
	sc, tracestate, sampled := b.decide(s)
	if !sampled {
		return sc
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		b.dropped.Add(1)
		return sc
	}
	if b.cur == nil {
		b.cur = b.newBatch()
	}
	cur := b.cur
	cur.add(s, sc, tracestate)
	if len(cur.ptrs) >= b.batchSize {
		b.cur = nil
		select {
		case b.queue <- cur:
		default:
			b.dropped.Add(uint64(len(cur.ptrs)))
			b.recycle(cur)
		}
	}
	b.mu.Unlock()
	return sc
}

// decide is s's span context and whether it is exported: the SDK's rules (a child keeps its
// parent's trace and flags, with sampled as decided; every span gets a new id), with the
// default sampler's decision made here, without its context and parameters.
func (b *SpanBatcher) decide(s *Span) (sc trace.SpanContext, tracestate string, sampled bool) {
	parent := s.Parent
	cfg := trace.SpanContextConfig{TraceID: parent.TraceID(), TraceState: parent.TraceState()}
	if !parent.TraceID().IsValid() {
		cfg.TraceID = newTraceID()
	}
	cfg.SpanID = newSpanID()
	if b.sampler == nil {
		// parentbased_always_on: a child follows its parent, a root is sampled.
		sampled = !parent.IsValid() || parent.IsSampled()
	} else {
		res := b.sampler.ShouldSample(sdktrace.SamplingParameters{
			ParentContext: trace.ContextWithSpanContext(context.Background(), parent),
			TraceID:       cfg.TraceID, Name: s.Name, Kind: s.Kind, Attributes: s.Attributes, Links: s.Links,
		})
		sampled = res.Decision == sdktrace.RecordAndSample
		cfg.TraceState = res.Tracestate
	}
	cfg.TraceFlags = parent.TraceFlags() &^ trace.FlagsSampled
	if sampled {
		cfg.TraceFlags |= trace.FlagsSampled
	}
	sc = trace.NewSpanContext(cfg)
	if sampled && cfg.TraceState.Len() > 0 {
		tracestate = cfg.TraceState.String()
	}
	return sc, tracestate, sampled
}

// IDs come from the runtime's per-thread generator (math/rand/v2's global source: ChaCha8,
// seeded randomly, no lock): unique and unpredictable enough for trace ids, as the SDK's
// generator, at a fraction of its cost (it locks one shared source).
func newTraceID() trace.TraceID {
	var id trace.TraceID
	for !id.IsValid() {
		putUint64(id[:8], rand.Uint64())
		putUint64(id[8:], rand.Uint64())
	}
	return id
}

func newSpanID() trace.SpanID {
	var id trace.SpanID
	for !id.IsValid() {
		putUint64(id[:], rand.Uint64())
	}
	return id
}

func putUint64(b []byte, v uint64) {
	_ = b[7]
	for i := range 8 {
		b[i] = byte(v >> (8 * i))
	}
}

// ForceFlush exports every span recorded before it; it returns when they are sent (or failed,
// counted in Stats), or with ctx's error.
func (b *SpanBatcher) ForceFlush(ctx context.Context) error {
	if b == nil {
		return nil
	}
	done := make(chan struct{})
	select {
	case b.flushes <- done:
	case <-b.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("flush spans: %w", ctx.Err())
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("flush spans: %w", ctx.Err())
	}
}

// Shutdown exports what is recorded, stops the client and records nothing more (later spans
// are counted as dropped). It may be called more than once.
func (b *SpanBatcher) Shutdown(ctx context.Context) error {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	first := !b.closed
	b.closed = true
	b.mu.Unlock()
	if first {
		close(b.stop)
	}
	var err error
	select {
	case <-b.done:
	case <-ctx.Done():
		err = fmt.Errorf("flush spans: %w", ctx.Err())
	}
	if first {
		if serr := b.client.Stop(ctx); serr != nil {
			err = errors.Join(err, fmt.Errorf("stop OTLP client: %w", serr))
		}
	}
	return err
}

// Stats counts the spans exported, dropped and failed so far.
func (b *SpanBatcher) Stats() BatcherStats {
	if b == nil {
		return BatcherStats{}
	}
	return BatcherStats{Exported: b.exported.Load(), Dropped: b.dropped.Load(), Failed: b.failed.Load()}
}

// run is the exporting goroutine: full batches as they come, the partial one after the delay,
// everything on a flush and at the stop.
func (b *SpanBatcher) run() {
	defer close(b.done)
	timer := time.NewTimer(b.delay)
	defer timer.Stop()
	for {
		select {
		case batch := <-b.queue:
			b.export(batch)
		case <-timer.C:
			b.exportPartial()
			timer.Reset(b.delay)
		case done := <-b.flushes:
			b.drain()
			close(done)
		case <-b.stop:
			b.drain()
			return
		}
	}
}

// drain exports the queued batches, then the one being filled.
func (b *SpanBatcher) drain() {
	for {
		select {
		case batch := <-b.queue:
			b.export(batch)
		default:
			b.exportPartial()
			return
		}
	}
}

// exportPartial exports the batch being filled, if it holds anything.
func (b *SpanBatcher) exportPartial() {
	b.mu.Lock()
	cur := b.cur
	if cur != nil && len(cur.ptrs) == 0 {
		cur = nil
	}
	if cur != nil {
		b.cur = nil
	}
	b.mu.Unlock()
	if cur != nil {
		b.export(cur)
	}
}

func (b *SpanBatcher) export(batch *spanBatch) {
	ctx, cancel := context.WithTimeout(context.Background(), b.timeout)
	n := uint64(len(batch.ptrs))
	err := b.client.UploadTraces(ctx, batch.request(b.resource, b.schemaURL, b.scope))
	cancel()
	if err != nil {
		b.failed.Add(n)
		if b.onError != nil {
			b.onError(fmt.Errorf("export %d spans: %w", n, err))
		}
	} else {
		b.exported.Add(n)
	}
	// The client has encoded and sent the request (or given up): its memory is free again.
	b.mu.Lock()
	b.recycle(batch)
	b.mu.Unlock()
}

// newBatch is a free batch or a new one; b.mu is held.
func (b *SpanBatcher) newBatch() *spanBatch {
	if n := len(b.free); n > 0 {
		batch := b.free[n-1]
		b.free = b.free[:n-1]
		return batch
	}
	return &spanBatch{}
}

// recycle keeps batch for reuse; b.mu is held. A steady flow needs two (one filling, one
// exporting) and a scheduling pass three or four; more, kept after a burst, would only add to
// what the garbage collector scans at every cycle (a batch of 2,048 spans is about 1.5 MB of
// pointers), so they are let go.
func (b *SpanBatcher) recycle(batch *spanBatch) {
	batch.reset()
	if len(b.free) < maxFreeBatches {
		b.free = append(b.free, batch)
	}
}

const maxFreeBatches = 4

// spanBatch is one export request being filled: the OTLP messages of its spans, taken from
// arenas that keep their memory from batch to batch.
type spanBatch struct {
	ptrs []*tracepb.Span
	// Contiguous lists the spans point into: sub-slices of these, written before they are
	// taken and never after, so growing them (to a new array) leaves earlier spans intact.
	kvPtrs   []*commonpb.KeyValue
	linkPtrs []*tracepb.Span_Link
	ids      []byte

	spans   arena[tracepb.Span]
	kvs     arena[commonpb.KeyValue]
	values  arena[commonpb.AnyValue]
	strs    arena[commonpb.AnyValue_StringValue]
	ints    arena[commonpb.AnyValue_IntValue]
	bools   arena[commonpb.AnyValue_BoolValue]
	doubles arena[commonpb.AnyValue_DoubleValue]
	links   arena[tracepb.Span_Link]

	rs tracepb.ResourceSpans
	ss tracepb.ScopeSpans
	rl [1]*tracepb.ResourceSpans
	sl [1]*tracepb.ScopeSpans
}

// Flags of a span and a link in OTLP: the W3C flags, and whether the parent (the linked span)
// is remote, which OTLP lets a span say.
const (
	flagHasIsRemote = uint32(tracepb.SpanFlags_SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK)
	flagIsRemote    = uint32(tracepb.SpanFlags_SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK)
)

func spanFlags(own trace.TraceFlags, other trace.SpanContext) uint32 {
	f := uint32(own) | flagHasIsRemote
	if other.IsRemote() {
		f |= flagIsRemote
	}
	return f
}

// add appends s with context sc as the SDK's exporter encodes a span.
func (sb *spanBatch) add(s *Span, sc trace.SpanContext, tracestate string) {
	sp := sb.spans.next()
	*sp = tracepb.Span{
		TraceState: tracestate,
		Name:       s.Name,
		// Unspecified and unknown kinds are internal, as the SDK makes them; the numbers
		// are OTLP's.
		Kind:              tracepb.Span_SpanKind(trace.ValidateSpanKind(s.Kind)),
		StartTimeUnixNano: unixNano(s.Start),
		EndTimeUnixNano:   unixNano(s.End),
		Flags:             spanFlags(sc.TraceFlags(), s.Parent),
	}
	tid, sid := sc.TraceID(), sc.SpanID()
	sp.TraceId = sb.id(tid[:])
	sp.SpanId = sb.id(sid[:])
	if psid := s.Parent.SpanID(); psid.IsValid() {
		sp.ParentSpanId = sb.id(psid[:])
	}
	sp.Attributes = sb.attributes(s.Attributes)
	if n := len(s.Links); n > 0 {
		links := s.Links
		if n > MaxLinks {
			links = links[:MaxLinks]
			sp.DroppedLinksCount = uint32(n - MaxLinks)
		}
		start := len(sb.linkPtrs)
		for i := range links {
			l := &links[i]
			pl := sb.links.next()
			ltid, lsid := l.SpanContext.TraceID(), l.SpanContext.SpanID()
			*pl = tracepb.Span_Link{Flags: spanFlags(l.SpanContext.TraceFlags(), l.SpanContext)}
			pl.TraceId = sb.id(ltid[:])
			pl.SpanId = sb.id(lsid[:])
			if ts := l.SpanContext.TraceState(); ts.Len() > 0 {
				pl.TraceState = ts.String()
			}
			pl.Attributes = sb.attributes(l.Attributes)
			sb.linkPtrs = append(sb.linkPtrs, pl)
		}
		sp.Links = sb.linkPtrs[start:len(sb.linkPtrs):len(sb.linkPtrs)]
	}
	sb.ptrs = append(sb.ptrs, sp)
}

// id copies an id into the batch's bytes.
func (sb *spanBatch) id(b []byte) []byte {
	start := len(sb.ids)
	sb.ids = append(sb.ids, b...)
	return sb.ids[start:len(sb.ids):len(sb.ids)]
}

// attributes converts attrs into the batch's key-values.
func (sb *spanBatch) attributes(attrs []attribute.KeyValue) []*commonpb.KeyValue {
	if len(attrs) == 0 {
		return nil
	}
	start := len(sb.kvPtrs)
	for _, a := range attrs {
		if !a.Valid() {
			continue
		}
		kv := sb.kvs.next()
		*kv = commonpb.KeyValue{Key: string(a.Key), Value: sb.value(a.Value)}
		sb.kvPtrs = append(sb.kvPtrs, kv)
	}
	return sb.kvPtrs[start:len(sb.kvPtrs):len(sb.kvPtrs)]
}

// value is v in OTLP; the scalar kinds from the arenas, the rare slices allocated.
func (sb *spanBatch) value(v attribute.Value) *commonpb.AnyValue {
	av := sb.values.next()
	switch v.Type() {
	case attribute.STRING:
		s := sb.strs.next()
		*s = commonpb.AnyValue_StringValue{StringValue: v.AsString()}
		*av = commonpb.AnyValue{Value: s}
	case attribute.INT64:
		i := sb.ints.next()
		*i = commonpb.AnyValue_IntValue{IntValue: v.AsInt64()}
		*av = commonpb.AnyValue{Value: i}
	case attribute.BOOL:
		x := sb.bools.next()
		*x = commonpb.AnyValue_BoolValue{BoolValue: v.AsBool()}
		*av = commonpb.AnyValue{Value: x}
	case attribute.FLOAT64:
		d := sb.doubles.next()
		*d = commonpb.AnyValue_DoubleValue{DoubleValue: v.AsFloat64()}
		*av = commonpb.AnyValue{Value: d}
	default:
		*av = commonpb.AnyValue{Value: anyValue(v).Value}
	}
	return av
}

// request is the batch as the client takes it: one resource, one scope.
func (sb *spanBatch) request(res *resourcepb.Resource, schemaURL string, scope *commonpb.InstrumentationScope) []*tracepb.ResourceSpans {
	sb.ss = tracepb.ScopeSpans{Scope: scope, Spans: sb.ptrs}
	sb.sl[0] = &sb.ss
	sb.rs = tracepb.ResourceSpans{Resource: res, ScopeSpans: sb.sl[:], SchemaUrl: schemaURL}
	sb.rl[0] = &sb.rs
	return sb.rl[:]
}

// reset empties the batch, keeping its memory. The messages are cleared when next used; the
// pointer lists are cleared now, so a batch waiting for reuse holds no strings of old spans.
func (sb *spanBatch) reset() {
	clear(sb.ptrs)
	clear(sb.kvPtrs)
	clear(sb.linkPtrs)
	sb.ptrs, sb.kvPtrs, sb.linkPtrs, sb.ids = sb.ptrs[:0], sb.kvPtrs[:0], sb.linkPtrs[:0], sb.ids[:0]
	sb.spans.reset()
	sb.kvs.reset()
	sb.values.reset()
	sb.strs.reset()
	sb.ints.reset()
	sb.bools.reset()
	sb.doubles.reset()
	sb.links.reset()
	sb.ss = tracepb.ScopeSpans{}
	sb.rs = tracepb.ResourceSpans{}
	sb.sl[0], sb.rl[0] = nil, nil
}

func unixNano(t time.Time) uint64 {
	if t.IsZero() {
		return 0
	}
	return uint64(max(0, t.UnixNano()))
}

// arena hands out values of T from chunks that never move, reused after reset. The caller
// overwrites each value it gets.
type arena[T any] struct {
	chunks [][]T
	n      int
}

const arenaChunk = 512

func (a *arena[T]) next() *T {
	c, i := a.n/arenaChunk, a.n%arenaChunk
	if c == len(a.chunks) {
		a.chunks = append(a.chunks, make([]T, arenaChunk))
	}
	a.n++
	return &a.chunks[c][i]
}

func (a *arena[T]) reset() { a.n = 0 }
