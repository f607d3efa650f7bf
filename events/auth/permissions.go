package auth

import (
	"slices"
	"time"

	"github.com/nats-io/jwt/v2"

	"skiff.dev/events"
	"skiff.dev/events/api"
	"skiff.dev/events/store"
)

// The JetStream streams behind the log and the buckets.
const (
	streamLog    = store.DefaultStream
	streamLeases = "KV_" + api.LeaseBucket
	streamLeader = "KV_" + api.LeaderBucket
	streamImages = "OBJ_" + api.ImageBucket
	// Snapshots of the whole fold, and of what a node may read of it (package snapshot).
	streamSnapshots     = "OBJ_" + api.SnapshotBucket
	streamNodeSnapshots = "OBJ_" + api.NodeSnapshotBucket
)

// objRead is what reading an object store takes, and no more: a user JWT travels in the
// CONNECT line, which the server caps at 4 KiB, and the scheduler's is close to it. Opening it
// (stream info), looking objects up (direct gets by subject), and the object store's ordered
// push consumers (one filter, a name: CONSUMER.CREATE.S.<name>.<filter>; deleted after; flow
// control).
func objRead(stream string) []string {
	return []string{
		"$JS.API.STREAM.INFO." + stream,
		"$JS.API.DIRECT.GET." + stream + ".>",
		"$JS.API.CONSUMER.CREATE." + stream + ".>",
		"$JS.API.CONSUMER.DELETE." + stream + ".>",
		"$JS.FC." + stream + ".>",
	}
}

// objWrite is what writing and deleting objects of a bucket by name takes, without listing or
// reading them: opening it, looking the name up, its chunk and meta subjects, and purging the
// chunks of a replaced or deleted object.
func objWrite(bucket string) []string {
	stream := "OBJ_" + bucket
	return []string{"$JS.API.STREAM.INFO." + stream, "$JS.API.DIRECT.GET." + stream + ".>",
		"$O." + bucket + ".>", "$JS.API.STREAM.PURGE." + stream}
}

// responseTTL is how long a user may answer a request it received.
const responseTTL = time.Minute

// jsRead is what reading a whole stream takes with nats.go v1.55: stream info, single messages
// (direct by subject, direct by sequence, or through the stream leader), ordered consumers
// (pull ones of the jetstream package and push ones such as the object store's Get and the KV
// watchers use), and the flow-control replies push consumers need.
func jsRead(stream string) []string {
	return []string{
		"$JS.API.INFO",
		"$JS.API.STREAM.INFO." + stream,
		"$JS.API.STREAM.MSG.GET." + stream,
		"$JS.API.DIRECT.GET." + stream,
		"$JS.API.DIRECT.GET." + stream + ".>",
		"$JS.API.CONSUMER.CREATE." + stream,
		"$JS.API.CONSUMER.CREATE." + stream + ".>",
		"$JS.API.CONSUMER.MSG.NEXT." + stream + ".>",
		"$JS.API.CONSUMER.DELETE." + stream + ".>",
		"$JS.API.CONSUMER.INFO." + stream + ".>",
		"$JS.FC." + stream + ".>",
	}
}

// Permissions is what role's user called name may publish, subscribe to and answer. The lists
// follow the spec's Permissions section, corrected where nats.go sends other subjects (doc.go
// lists the differences).
//
// Errors: events.ErrInvalidArgument when Identity refuses the name.
func Permissions(role Role, name string) (jwt.Permissions, error) {
	id, err := Identity(role, name)
	if err != nil {
		return jwt.Permissions{}, err
	}
	inbox := InboxPrefix(id) + ".>"
	var p jwt.Permissions
	switch role {
	case RoleAdmin:
		p.Pub.Allow = jwt.StringList{">"}
		p.Sub.Allow = jwt.StringList{">"}
	case RoleScheduler:
		p.Pub.Allow = list(
			[]string{
				events.SubjectRoot + ".pod.>", events.SubjectRoot + ".bind.>", events.SubjectRoot + ".deployment.>",
				events.SubjectRoot + ".service.>", events.SubjectRoot + ".endpoints.>", events.SubjectRoot + ".namespace.>",
				events.SubjectRoot + ".node.>",
				// Leader terms and the fences of the leader's batches; no one else may write
				// them, or anyone could end a term.
				events.SubjectRoot + "." + events.KindLeader + ".>",
				"$KV." + api.LeaderBucket + ".>",
				// The node lifecycle controller deletes a gone node's lease.
				"$KV." + api.LeaseBucket + ".>",
				// Answers to commands and queries. A response permission would not do: the
				// server keeps it with the connection the request came in on, so an answer
				// sent after the replica reconnected to another server (its server lost
				// mid-command) was refused and the client waited out its timeout.
				"_INBOX.>",
			},
			jsRead(streamLog), jsRead(streamLeader), jsRead(streamLeases),
			// The leader writes snapshots and prunes old ones; every replica starts from one.
			// The node bucket it only writes, pruning it by the names the other's listing gave.
			objWrite(api.SnapshotBucket), objRead(streamSnapshots),
			objWrite(api.NodeSnapshotBucket),
		)
		p.Sub.Allow = jwt.StringList{inbox, "skiff.cmd.>", api.SubjectGet}
	case RoleNode:
		ev := events.SubjectRoot
		create := "$JS.API.CONSUMER.CREATE." + streamLog + ".*."
		direct := "$JS.API.DIRECT.GET." + streamLog + "."
		p.Pub.Allow = list(
			[]string{
				// Its pods' status and its own registration (events.NodeRegistrationSubject);
				// never skiff.ev.node._.<name>, where controllers and admission write about it.
				ev + ".status." + name + ".>",
				ev + ".node." + name,
				"$KV." + api.LeaseBucket + "." + name,
				// Log chunks and .alive probes to the CLI that asked: _INBOX.<identity>.logs.<nuid>.
				"_INBOX.*.logs.>",
				"$JS.API.INFO",
				"$JS.API.STREAM.INFO." + streamLog,
				// Ordered consumers on one filter name it in the subject, so the server checks
				// the filter: the node's own bind and status subjects, and what every node reads.
				create + ev + ".*." + name + ".*.*",
				create + ev + ".service.>",
				create + ev + ".endpoints.>",
				create + ev + ".node.>",
				"$JS.API.CONSUMER.MSG.NEXT." + streamLog + ".*",
				"$JS.API.CONSUMER.DELETE." + streamLog + ".*",
				"$JS.API.CONSUMER.INFO." + streamLog + ".*",
				// Follow asks for the last sequence on its filter before it starts.
				direct + ev + ".*." + name + ".*.*",
				direct + ev + ".bind." + name + ".>",
				direct + ev + ".status." + name + ".>",
				direct + ev + ".service.>",
				direct + ev + ".endpoints.>",
				direct + ev + ".node.>",
				"$JS.API.STREAM.INFO." + streamLeases,
				"$JS.API.DIRECT.GET." + streamLeases + ".$KV." + api.LeaseBucket + "." + name,
			},
			jsRead(streamImages),
			// What a node may read of the fold, never the whole of it (it holds every pod).
			objRead(streamNodeSnapshots),
		)
		p.Sub.Allow = jwt.StringList{inbox, api.LogsSubject(name)}
		p.Resp = &jwt.ResponsePermission{MaxMsgs: 1, Expires: responseTTL}
	case RoleUser:
		p.Pub.Allow = list(
			[]string{"skiff.cmd.*." + id, api.SubjectGet, "skiff.logs.*"},
			jsRead(streamLog),
			[]string{"$O." + api.ImageBucket + ".>", "$JS.API.STREAM.PURGE." + streamImages},
			jsRead(streamImages),
			// Users read the whole log, so the whole fold too (skiff events replay --from-snapshot).
			objRead(streamSnapshots),
		)
		p.Sub.Allow = jwt.StringList{inbox}
		// Log chunks arrive as requests whose acks the CLI sends back.
		p.Resp = &jwt.ResponsePermission{MaxMsgs: 1, Expires: responseTTL}
	}
	return p, nil
}

// list concatenates subject lists, dropping repeats (every jsRead has $JS.API.INFO).
func list(parts ...[]string) jwt.StringList {
	var out jwt.StringList
	for _, p := range parts {
		for _, s := range p {
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}
