package scheduling

import (
	"context"
	"errors"

	"skiff.dev/events"
	"skiff.dev/events/store"
)

// write is the writer goroutine: it turns batches into events and appends them, pipelined.
// PodScheduled must land before its PodBound is sent (the PodBound is conditional on nothing, the
// PodScheduled is the decision), so the PodBounds of one batch travel in the same AppendAll as
// the PodScheduleds of the next: the log always has a full pipeline, and a pod's two events are
// one round trip apart. Results go back to the loop, which owns all bookkeeping.
func (s *Scheduler) write(ctx context.Context) {
	type tag struct {
		kind string // "scheduled", "bound", "unschedulable"
		d    *decision
		pod  *podInfo
	}
	var carry []store.Write // PodBounds whose PodScheduled landed
	var carryTags []tag
	var tracing podTracing
	for {
		var b *batch
		if len(carry) == 0 {
			select {
			case b = <-s.work:
			case <-ctx.Done():
				return
			}
		} else {
			select {
			case b = <-s.work:
			case <-ctx.Done():
				return
			default:
			}
		}
		now := s.cfg.Clock()
		meta := events.Meta{Actor: s.cfg.Actor}
		ws, tags := carry, carryTags
		carry, carryTags = nil, nil
		var buildFailed []result
		if b != nil {
			for i := range b.decisions {
				d := &b.decisions[i]
				d.traceparent = s.tracePod(&tracing, &d.pod, d.trace)
				ev, err := events.New(now, caused(meta, d.pod.cause, d.traceparent), podRef(&d.pod), "", &events.PodScheduled{
					UID: d.pod.uid, Node: d.node, Score: d.score, Feasible: d.feasible, Nodes: d.evaluated, StateSeq: d.stateSeq,
				})
				if err != nil {
					// Cannot happen with a registered payload; if it does, the loop must forget
					// the decision, or the pod would stay assumed forever.
					s.log.Error("build PodScheduled", "pod", d.pod.key, "err", err)
					buildFailed = append(buildFailed, result{kind: scheduleFailed, key: d.pod.key, uid: d.pod.uid, err: err, expect: d.pod.seq})
					continue
				}
				ws = append(ws, store.Write{Event: ev, Expect: d.pod.seq})
				tags = append(tags, tag{kind: "scheduled", d: d, pod: &d.pod})
			}
			for i := range b.unschedulable {
				u := &b.unschedulable[i]
				u.traceparent = s.tracePod(&tracing, &u.pod, u.trace)
				ev, err := events.New(now, caused(meta, u.pod.cause, u.traceparent), podRef(&u.pod), "", &events.PodUnschedulable{
					UID: u.pod.uid, Message: u.message, Reasons: u.reasons,
					NodeReasons: u.nodeReasons, NodeSet: u.nodeSet, StateSeq: u.stateSeq,
				})
				if err != nil {
					s.log.Error("build PodUnschedulable", "pod", u.pod.key, "err", err)
					continue
				}
				ws = append(ws, store.Write{Event: ev, Expect: u.pod.seq})
				tags = append(tags, tag{kind: "unschedulable", pod: &u.pod})
			}
			for i := range b.gaps {
				g := &b.gaps[i]
				ev, err := events.New(now, caused(meta, g.pod.cause, ""), podRef(&g.pod), g.node, &events.PodBound{Pod: g.pod.pod})
				if err != nil {
					s.log.Error("build PodBound", "pod", g.pod.key, "err", err)
					continue
				}
				ws = append(ws, store.Write{Event: ev, Expect: g.bindSeq})
				tags = append(tags, tag{kind: "bound", pod: &g.pod})
			}
		}
		rs := buildFailed
		if len(ws) == 0 {
			if len(rs) > 0 {
				select {
				case s.results <- rs:
				case <-ctx.Done():
					return
				}
			}
			continue
		}
		errs := s.cfg.Log.AppendAll(ctx, ws)
		landed := s.cfg.Clock()
		for i, t := range tags {
			err := errs[i]
			switch t.kind {
			case "scheduled":
				if err != nil {
					if !errors.Is(err, events.ErrFenced) {
						s.cfg.Metrics.Errors.Inc()
					}
					rs = append(rs, result{kind: scheduleFailed, key: t.pod.key, uid: t.pod.uid, err: err, expect: t.pod.seq})
					continue
				}
				s.cfg.Metrics.Scheduled.Inc()
				ev, berr := events.New(now, meta.Caused(ws[i].Event), podRef(t.pod), t.d.node, &events.PodBound{Pod: t.pod.pod})
				if berr != nil {
					s.log.Error("build PodBound", "pod", t.pod.key, "err", berr)
					rs = append(rs, result{kind: bindDone, key: t.pod.key, uid: t.pod.uid, err: berr})
					continue
				}
				carry = append(carry, store.Write{Event: ev, Expect: t.d.bindSeq})
				carryTags = append(carryTags, tag{kind: "bound", pod: t.pod})
			case "bound":
				if err == nil {
					s.cfg.Metrics.Bound.Inc()
					if c := t.pod.pod.Metadata.CreationTimestamp; c != nil {
						s.cfg.Metrics.Latency.Observe(landed.Sub(*c).Seconds())
					}
				}
				rs = append(rs, result{kind: bindDone, key: t.pod.key, uid: t.pod.uid, err: err})
			case "unschedulable":
				if err != nil {
					rs = append(rs, result{kind: unschedulableFailed, key: t.pod.key, uid: t.pod.uid, err: err})
				}
			}
		}
		if len(rs) > 0 {
			select {
			case s.results <- rs:
			case <-ctx.Done():
				return
			}
		}
	}
}

// caused is meta for an event reacting to cause, carrying traceparent (the span that decided it)
// or else the cause's.
func caused(meta events.Meta, cause events.Cause, traceparent string) events.Meta {
	meta.Traceparent = traceparent
	return meta.From(cause)
}

func podRef(p *podInfo) events.ObjectRef {
	return events.ObjectRef{Kind: events.KindPod, Namespace: p.key.Namespace, Name: p.key.Name, UID: p.uid}
}
