package cluster

import (
	"fmt"
	"strconv"
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

// UnmarkedPoison returns, for each sequence in seqs, a sentence when `skiff events log`'s
// output log does not mark the event there as poison ("does not decode"): missing, or listed
// as if it were an event.
func UnmarkedPoison(log string, seqs []uint64) []string {
	var out []string
	for _, seq := range seqs {
		line := ""
		for _, l := range strings.Split(log, "\n") {
			if f := strings.Fields(l); len(f) > 0 && f[0] == strconv.FormatUint(seq, 10) {
				line = l
			}
		}
		switch {
		case line == "":
			out = append(out, fmt.Sprintf("seq %d is not in skiff events log", seq))
		case !strings.Contains(line, "does not decode"):
			out = append(out, fmt.Sprintf("seq %d is listed as if it were an event: %s", seq, line))
		}
	}
	return out
}
