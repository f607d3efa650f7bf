package events

import stdjson "encoding/json"

// UseStdJSON makes the codec decode with encoding/json until restore is called: the baseline of
// the replay benchmark.
func UseStdJSON() (restore func()) {
	old := unmarshal
	unmarshal = stdjson.Unmarshal
	return func() { unmarshal = old }
}
