// Package simulate runs many fake nodes in one process, like KWOK: they register, renew their
// leases and report every pod bound to them Running at once, without containers or networks, so
// the control plane can be exercised and measured at thousands of nodes on one machine.
//
// # What a simulated node does
//
// Each node registers with the labels skiff.dev/simulated=true and kubernetes.io/hostname, and
// the configured capacity. For each PodBound on its bind subject it reports PodStatusReported:
// phase Running, every container running and ready, restart count 0, and a pod IP from the node's
// pod CIDR once the control plane assigned one. For each PodStopRequested it reports
// PodTerminated.
//
// # Ordering and concurrency
//
// One consumer follows all bind and status subjects (skiff.ev.bind.> and skiff.ev.status.>) in
// stream order and ignores nodes that are not this simulator's. Reading its own status reports
// back is what makes it restartable: after catching up it knows which pods were already reported
// and acts only on what is missing. Nothing is written before the consumer caught up. One writer
// goroutine appends reports in pipelined batches, each conditional on the status subject's last
// sequence; a pod is never in two writes at once.
package simulate
