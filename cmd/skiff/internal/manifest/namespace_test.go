package manifest

import (
	"encoding/json"
	"errors"
	"testing"

	"skiff.dev/events"
	"skiff.dev/events/api"
)

func TestSetNamespace(t *testing.T) {
	docs := []api.Document{
		{Index: 0, Object: json.RawMessage(`{"apiVersion":"v1","kind":"Service","metadata":{"name":"a"}}`)},
		{Index: 1, Object: json.RawMessage(`{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"team"}}`)},
		{Index: 2, Object: json.RawMessage(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"team"}}`)},
		{Index: 3, Object: json.RawMessage(`{"apiVersion":"v1","kind":"Pod"}`)},
	}
	if err := SetNamespace(docs, "team"); err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"team", "", "team", "team"} {
		var obj struct {
			Metadata struct {
				Namespace string `json:"namespace"`
			} `json:"metadata"`
		}
		if err := json.Unmarshal(docs[i].Object, &obj); err != nil {
			t.Fatal(err)
		}
		if obj.Metadata.Namespace != want {
			t.Errorf("document %d namespace %q, want %q", i, obj.Metadata.Namespace, want)
		}
	}
	err := SetNamespace([]api.Document{{Object: json.RawMessage(`{"kind":"Pod","metadata":{"name":"p","namespace":"other"}}`)}}, "team")
	if !errors.Is(err, events.ErrInvalidArgument) {
		t.Fatalf("a document in another namespace: %v, want InvalidArgument", err)
	}
}
