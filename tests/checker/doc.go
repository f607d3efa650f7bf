// Package checker reads a whole Skiff log after a fault scenario and says whether the cluster
// kept its promises. It is the chaos suite's independent judge (issue 8, "The checker"), in
// the spirit of Jepsen's and etcd's robustness checkers: it never asks a service, and it never
// uses events/state's fold to decide an invariant, because that fold is what it checks. It
// reads the stream's raw messages with their headers through its own JetStream consumer,
// decodes them with the events package's decoder (the same rules every reader applies, so
// poison here is poison everywhere) and derives every fact itself. Only FoldMatches folds the
// log with events/state, to compare that fold with what a service reports.
//
// # When to call it
//
// Check judges the log as it stands, so call it once the scenario has healed and the cluster
// has converged (every node reachable again, the rollout done): a node that is still cut off
// has had no chance to stop what it runs, and the checker reports it (invariant 2b).
//
// # Invariants
//
// Each violation is one sentence naming its invariant and the sequence numbers involved.
//
//  1. Bound once ("bound once"). A pod UID is scheduled (PodScheduled) at most once and bound
//     (PodBound) at most once, on the node it was scheduled to, with spec.nodeName naming that
//     node. Two schedulers racing, or a stale leader, must lose on the pod subject's
//     conditional sequence; a second PodScheduled or PodBound in the log means that failed.
//
//  2. One running copy ("one running copy"). What can be guaranteed, and so what is checked:
//     (a) a node reports (PodStatusReported, PodTerminated) only pods bound to it: a report of a
//     UID bound to another node is a second copy; since a UID is bound once, no two nodes ever
//     claim the same UID Running. (b) At the end of the log, no pod deleted in the log is still
//     Running: a node's last report about a deleted UID must not say Running. A partitioned node
//     may report Running late, after the pod was evicted and deleted (its publish waited in the
//     client's reconnect buffer, and its status subject is its own, so the conditional append
//     lands); that is allowed, as long as the node then reports PodTerminated when it sees the
//     stop request. Reports of a node deleted afterwards (NodeDeleted, not registered again) are
//     exempt: the log can no longer speak for that machine. (c) At the end of the log, at most
//     one node's last report says Running for any pod name among the pods not deleted
//     (Report.Running). (d) A node does not report a pod Running after it reported it
//     terminated. Two copies of a pod name during the log (an evicted one on a cut-off node and
//     its replacement) are not a violation: that is what eviction does; only (b) and (c) at the
//     end are.
//
//  3. Conditional sequences ("conditional sequence"). JetStream keeps the
//     Nats-Expected-Last-Subject-Sequence header of every append in the stored message, so the
//     checker replays the condition: each message that carries it must have been appended when
//     its subject's previous message had exactly that sequence (0: the subject was empty).
//     The server enforces this when it stores a message, so a failure here means the log is
//     not what the server accepted; the checks that catch a writer's mistake are the next
//     ones. Every decodable event must carry the header (every writer appends through
//     store.Append, which always does: an event without it is a writer that skipped the
//     concurrency control), conditioned on its own subject (not on another one through
//     Nats-Expected-Last-Subject-Sequence-Subject; the one exception is a leader's fence,
//     LeaderWrote, conditioned on the term subject: replayed, its term must have been the
//     newest, so no batch of a stale leader was stored), with a Nats-Msg-Id equal to its envelope
//     id (else a retry after a lost ack is not deduplicated); no Nats-Msg-Id and no event id
//     may appear twice. Stream sequences must increase by one from 1 to the head: a gap means
//     events were lost (retention, or a bug). Poison need carry none of these headers (an
//     admin's raw publish does not), but its sequence counts for the conditions after it, as
//     it does for every reader.
//
//     A pod's events must come in its lifecycle's order ("pod lifecycle"): PodCreated first, for
//     a name no live pod holds; PodScheduled or PodUnschedulable, never PodUnschedulable after
//     PodScheduled; PodBound on the scheduled node after PodScheduled, never after a stop
//     request for it; PodStopRequested on the scheduled node only; status reports only after
//     the binding; PodDeleted of a scheduled pod only after its stop request (which claims the
//     bind subject so that a late binding conflicts). After PodDeleted, only its node's status
//     reports (a late report, the PodTerminated of an evicted pod) may follow; anything else
//     about the UID is a violation. Events about a UID the log never created, or on the subject
//     of another pod name, are violations too.
//
//     Leader terms ("leader terms"): each LeaderElected counts one up from the term before it,
//     and each LeaderWrote names the term of the LeaderElected its condition points at.
//
//  4. Poison. Every message either decodes (envelope and payload, within
//     events.MaxEventBytes, a type of its subject's kind, a subject of the right shape) or is
//     listed in Report.Poison with its sequence and why. Poison is not a violation: the suite
//     decides whether it expected it (scenario 6 appends some).
//
//  5. The fold matches every live view. Report.FoldMatches folds the log with events/state up
//     to the sequence each view was taken at and compares pods (UID, node, phase, IP, deletion),
//     nodes (readiness, cordon, pod CIDR, address), services (ClusterIP, selector, ports),
//     endpoints (every address with its node, pod and ports) and deployments (replicas,
//     generation). GetViews asks a scheduler replica for them, as `skiff get` does.
//
// # Facts
//
// Besides violations a Report holds what the suite asserts on: the pods by UID with the
// sequence of each step (Report.Pods), UID → node bindings (Bound), names → nodes whose last
// report says Running (Running), live pods (Live), counts per event type, poison, pods
// scheduled but never bound (Unbound) and deleted pods whose node never reported them
// terminated (Unterminated), and the sequence of any event id (Seq), so a writer that recorded
// its acknowledgements can find each in the log.
//
// # Cost
//
// One pass over the log with decoding on every core, and memory for every pod UID and event
// id. On a log of 100,000 events BenchmarkCheck measures about 1.4 s of CPU per Check (the
// embedded server's delivery included), about 1.3 s of wall time on two lightly loaded cores.
package checker
