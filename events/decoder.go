package events

import (
	"runtime"
	"sync"
)

// Decoder decodes messages of the log on several goroutines and hands them back in the order
// they were submitted. Decoding is most of what reading the log costs and each message decodes on
// its own, while folding must stay in order: so replay uses every core for the first and one for
// the second.
//
// One goroutine calls Submit, Flush and finally Close; another calls Next. Messages travel in
// batches, so the cost of handing work between goroutines is paid once per batch, not per message:
// the submitter flushes a batch when it is full, or at once when nothing more is waiting (a live
// message is never held back).
type Decoder struct {
	raw     bool
	order   chan *batch
	work    chan *batch
	cur     *batch
	out     *batch
	outAt   int
	workers sync.WaitGroup
}

// Decoded is one message after decoding: Event is nil and Err set when it does not decode.
type Decoded struct {
	Subject string
	Seq     uint64
	Data    []byte
	// Header is whatever the submitter wants carried along (the trace context).
	Header string
	Event  *Event
	Err    error
}

type batch struct {
	msgs []Decoded
	done chan struct{}
}

const (
	// DecoderBatch is the most messages one batch holds.
	DecoderBatch = 128
	// decoderDepth bounds the batches in flight between Submit and Next.
	decoderDepth = 16
)

// NewDecoder starts a decoder with one worker per CPU. raw decodes envelopes only.
func NewDecoder(raw bool) *Decoder {
	d := &Decoder{raw: raw, order: make(chan *batch, decoderDepth), work: make(chan *batch, decoderDepth)}
	n := max(runtime.GOMAXPROCS(0), 1)
	d.workers.Add(n)
	for range n {
		go func() {
			defer d.workers.Done()
			for b := range d.work {
				for i := range b.msgs {
					m := &b.msgs[i]
					if d.raw {
						m.Event, m.Err = DecodeEnvelope(m.Subject, m.Seq, m.Data)
					} else {
						m.Event, m.Err = Decode(m.Subject, m.Seq, m.Data)
					}
				}
				close(b.done)
			}
		}()
	}
	return d
}

// Submit adds a message to the current batch and sends the batch when it is full.
func (d *Decoder) Submit(subject string, seq uint64, data []byte, header string) {
	if d.cur == nil {
		d.cur = &batch{msgs: make([]Decoded, 0, DecoderBatch), done: make(chan struct{})}
	}
	d.cur.msgs = append(d.cur.msgs, Decoded{Subject: subject, Seq: seq, Data: data, Header: header})
	if len(d.cur.msgs) == DecoderBatch {
		d.Flush()
	}
}

// Flush sends the current batch, however small; it blocks while decoderDepth batches are in
// flight.
func (d *Decoder) Flush() {
	if d.cur == nil {
		return
	}
	b := d.cur
	d.cur = nil
	d.order <- b
	d.work <- b
}

// Close flushes and says no more messages come; Next reports the end after the last one.
func (d *Decoder) Close() {
	d.Flush()
	close(d.work)
	close(d.order)
}

// Next returns the next message in submission order, waiting for its decoding; ok is false once
// the decoder is closed and drained. The message is valid until the next call.
func (d *Decoder) Next() (m *Decoded, ok bool) {
	for d.out == nil || d.outAt == len(d.out.msgs) {
		b, ok := <-d.order
		if !ok {
			return nil, false
		}
		<-b.done
		d.out, d.outAt = b, 0
	}
	m = &d.out.msgs[d.outAt]
	d.outAt++
	return m, true
}
