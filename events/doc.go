// Package events defines Skiff's event log: the envelope every event travels in, the versioned
// event types, the subjects they live on, and the codec.
//
// # The log
//
// Every change of every object is one event on one JetStream subject per object:
//
//	skiff.ev.<kind>.<namespace>.<name>            pods, deployments, services, endpoints, namespaces, nodes
//	skiff.ev.bind.<node>.<namespace>.<pod>        a pod bound to a node: the node's work
//	skiff.ev.status.<node>.<namespace>.<pod>      what that node reports about the pod
//
// Cluster-scoped kinds use "_" as namespace. Names are DNS-1123 labels, so they never contain the
// subject separator.
//
// # Ordering
//
// Events of one subject are totally ordered by their stream sequence, and every write is
// conditional on the last sequence of its subject (see package store), so an object's history is
// the sequence of decisions made on the state its writer saw. Events of different subjects are
// ordered by stream sequence too; the projection (package state) folds them in that order.
//
// # Compatibility
//
// An event carries its type and schema version. Decoding an unknown type, an unknown version or a
// malformed payload returns an error wrapping ErrInvalidArgument; consumers report it and skip the
// event, they never stop.
package events
