package api

import (
	"github.com/nats-io/nats.go"
)

// Headers of acknowledged requests (see the package doc, "Acknowledgements and resends").
const (
	// HeaderAck on a request (value AckRequested) asks the replica that takes it to say so at
	// once. On a reply (value AckAccepted) it is that acknowledgement: a message with no data.
	HeaderAck = "Skiff-Ack"
	// HeaderRequestID names one request across its resends. A replica that sees a command's ID
	// again answers with the first copy's answer instead of carrying the command out again.
	HeaderRequestID = "Skiff-Request-Id"

	AckRequested = "1"
	AckAccepted  = "accepted"
)

// Accept tells the client that this replica took msg, if the client asked (HeaderAck): a
// header-only message on the reply subject, before the answer. Responders call it before any
// work, so a replica acknowledges at once however busy it is. A request from an old client
// (no header) gets no acknowledgement, which that client would take for its answer.
func Accept(msg *nats.Msg) error {
	if msg.Reply == "" || msg.Header.Get(HeaderAck) == "" {
		return nil
	}
	ack := nats.NewMsg(msg.Reply)
	ack.Header.Set(HeaderAck, AckAccepted)
	return msg.RespondMsg(ack)
}

// RequestID is the client's name for msg's request, the same on every copy it sends; "" from
// clients that do not resend.
func RequestID(msg *nats.Msg) string { return msg.Header.Get(HeaderRequestID) }

// isAck says whether a reply is an acknowledgement rather than (part of) an answer.
func isAck(msg *nats.Msg) bool {
	return len(msg.Data) == 0 && msg.Header.Get(HeaderAck) == AckAccepted
}

// isNoResponders says whether a reply is the server's "no responders" status: nobody was
// subscribed to the request's subject.
func isNoResponders(msg *nats.Msg) bool {
	return len(msg.Data) == 0 && msg.Header.Get("Status") == "503"
}
