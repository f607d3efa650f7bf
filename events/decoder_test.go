package events_test

import (
	"fmt"
	"testing"

	"skiff.dev/events"
)

// Results come back in submission order whatever order the workers finish in, bad messages
// included.
func TestDecoderKeepsOrder(t *testing.T) {
	d := events.NewDecoder(false)
	const n = 2000
	go func() {
		for i := 1; i <= n; i++ {
			data := []byte(fmt.Sprintf(`{"id":"%d","type":"PodDeleted","v":1,"object":{"kind":"pod","name":"p%d"},"payload":{"uid":"u%d"}}`, i, i, i))
			if i%100 == 0 {
				data = []byte(`{broken`)
			}
			d.Submit("skiff.ev.pod.default.p", uint64(i), data, "h")
			if i%7 == 0 {
				d.Flush() // batches of every size
			}
		}
		d.Close()
	}()
	for i := 1; ; i++ {
		m, ok := d.Next()
		if !ok {
			if i != n+1 {
				t.Fatalf("decoder ended after %d messages, want %d", i-1, n)
			}
			return
		}
		if m.Seq != uint64(i) || m.Header != "h" {
			t.Fatalf("message %d came back as seq %d", i, m.Seq)
		}
		if i%100 == 0 {
			if m.Err == nil {
				t.Fatalf("seq %d: a broken message decoded", i)
			}
			continue
		}
		if m.Err != nil || m.Event.Data.(*events.PodDeleted).UID != fmt.Sprintf("u%d", i) {
			t.Fatalf("seq %d: %v %+v", i, m.Err, m.Event)
		}
	}
}
