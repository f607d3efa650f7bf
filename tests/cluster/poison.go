package cluster

import (
	"strings"

	"skiff.dev/events"
)

// PoisonMessage is a message on the log that no reader can decode.
type PoisonMessage struct {
	Why, Subject, Data string
}

// Poison is one of each kind of poison an admin's raw publish can put on the log: a payload that
// is not JSON, an unknown type, a version from the future, one over events.MaxEventBytes, and an
// event on a subject of another kind. Every service must report and skip each.
func Poison() []PoisonMessage {
	big := `{"type":"PodCreated","v":1,"payload":{"pod":{"metadata":{"name":"` + strings.Repeat("x", events.MaxEventBytes) + `"}}}}`
	return []PoisonMessage{
		{"not JSON", events.ObjectSubject(events.KindPod, "default", "junk"), "this is not json"},
		{"unknown type", events.ObjectSubject(events.KindService, "default", "junk"), `{"type":"ServiceTeleported","v":1,"payload":{}}`},
		{"version from the future", events.ObjectSubject(events.KindEndpoints, "default", "junk"), `{"type":"EndpointsUpdated","v":99,"payload":{}}`},
		{"oversized", events.ObjectSubject(events.KindPod, "default", "huge"), big},
		{"type of another kind", events.ObjectSubject(events.KindPod, "default", "wrong"), `{"type":"ServiceApplied","v":1,"payload":{"service":{}}}`},
	}
}
