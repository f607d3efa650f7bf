package api

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
)

// Container logs: `skiff logs` asks the agent of the pod's node directly, because the logs are
// files on that node and never enter the event log.
//
// The exchange:
//
//  1. The client subscribes to an inbox I (chunks) and to LogsAliveSubject(I) (probes), then
//     sends a LogsRequest naming I as a core NATS request to LogsSubject(node). No reply at all
//     (nats.ErrNoResponders) means no agent runs on that node.
//  2. The agent answers the request with a LogsResponse: an Error (pod, container or previous
//     run not found) and nothing more, or the run it is about to send and its heartbeat.
//  3. The agent sends the log as LogsChunks, each a request to I that the client answers (with
//     an empty message) once it has written the chunk out. The agent reads the next chunk only
//     after that answer, so at most one chunk per stream is ever in flight, however slow the
//     client's output. The chunk marked Last ends the stream.
//  4. While the stream lasts the agent probes LogsAliveSubject(I) every heartbeat. A probe
//     without responder means the client went away (its subscription is gone) and the agent
//     stops; a client that hears no probe for several heartbeats knows the agent is gone. An
//     agent that stops sends a last chunk with an Unavailable Error, without waiting for its
//     answer.

// LogsChunkBytes bounds the log bytes of one chunk.
const LogsChunkBytes = 256 << 10

// LogsSubject is where the agent of node answers log requests. Node names are DNS labels, so the
// name is one subject token, and NATS permissions can confine a node to its own subject.
func LogsSubject(node string) string { return "skiff.logs." + node }

// LogsInbox is the inbox a client receives a log stream on: under its own inbox prefix, with a
// "logs" token, because node identities may publish only to "_INBOX.*.logs.>", never into
// another client's replies.
func LogsInbox(prefix, id string) string { return prefix + ".logs." + id }

// LogsAliveSubject is where the client of a log stream that receives chunks on inbox answers the
// agent's liveness probes. It is apart from inbox so that a client blocked writing a chunk
// still answers probes.
func LogsAliveSubject(inbox string) string { return inbox + ".alive" }

// LogsRequest asks for one container's log. UID pins the pod, so a pod deleted and created
// again under the same name is never mixed up with its predecessor.
type LogsRequest struct {
	Namespace string `json:"namespace"`
	Pod       string `json:"pod"`
	UID       string `json:"uid"`
	Container string `json:"container"`
	// Follow keeps the stream open, sending what the container writes, across log rotations
	// and restarts, until the pod is gone or the client goes away.
	Follow bool `json:"follow,omitempty"`
	// Previous asks for the run before the current one (the last crash's output).
	Previous bool `json:"previous,omitempty"`
	// TailLines, when set, starts that many lines before the end; 0 sends only what comes next.
	TailLines *int64 `json:"tailLines,omitempty"`
	// Inbox receives the chunks; see LogsAliveSubject.
	Inbox string `json:"inbox"`
}

// LogsResponse answers a LogsRequest: Error, or the stream starts.
type LogsResponse struct {
	Error *Error `json:"error,omitempty"`
	// Restart is the run being sent: the container's restart count when it wrote the log.
	Restart int `json:"restart"`
	// HeartbeatMillis is how often the agent probes the client while the stream lasts.
	HeartbeatMillis int64 `json:"heartbeatMillis,omitempty"`
}

// Heartbeat is HeartbeatMillis as a duration.
func (r *LogsResponse) Heartbeat() time.Duration {
	return time.Duration(r.HeartbeatMillis) * time.Millisecond
}

// LogsChunk is one message of a log stream. On the wire Data is the message body, unencoded
// (logs are bulk), and the rest travels in headers.
type LogsChunk struct {
	// Seq numbers the chunks of one stream from 1.
	Seq  uint64
	Data []byte
	// Last ends the stream: the whole log was sent, or (when following) the pod is gone.
	Last bool
	// Error ends the stream with a failure on the agent's side; it comes with Last.
	Error *Error
}

// Headers of a LogsChunk message.
const (
	hdrLogsSeq   = "Skiff-Logs-Seq"
	hdrLogsLast  = "Skiff-Logs-Last"
	hdrLogsError = "Skiff-Logs-Error"
)

// Msg encodes the chunk as a message to subject.
func (c *LogsChunk) Msg(subject string) (*nats.Msg, error) {
	m := nats.NewMsg(subject)
	m.Data = c.Data
	m.Header.Set(hdrLogsSeq, strconv.FormatUint(c.Seq, 10))
	if c.Last {
		m.Header.Set(hdrLogsLast, "true")
	}
	if c.Error != nil {
		b, err := json.Marshal(c.Error)
		if err != nil {
			return nil, fmt.Errorf("encode log chunk error: %w", err)
		}
		m.Header.Set(hdrLogsError, string(b))
	}
	return m, nil
}

// DecodeLogsChunk reads a chunk from its message. A message without the chunk headers (such as
// a "no responders" status) is an error.
func DecodeLogsChunk(m *nats.Msg) (*LogsChunk, error) {
	seq, err := strconv.ParseUint(m.Header.Get(hdrLogsSeq), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("log chunk on %s has no valid %s header (%q)", m.Subject, hdrLogsSeq, m.Header.Get(hdrLogsSeq))
	}
	c := &LogsChunk{Seq: seq, Data: m.Data, Last: m.Header.Get(hdrLogsLast) == "true"}
	if e := m.Header.Get(hdrLogsError); e != "" {
		c.Error = &Error{}
		if err := json.Unmarshal([]byte(e), c.Error); err != nil {
			return nil, fmt.Errorf("log chunk %d: malformed %s header: %w", seq, hdrLogsError, err)
		}
	}
	return c, nil
}
