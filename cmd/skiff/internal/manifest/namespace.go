package manifest

import (
	"encoding/json"
	"fmt"

	"skiff.dev/events"
	"skiff.dev/events/api"
)

// SetNamespace gives every namespaced document without metadata.namespace the namespace ns, as
// `kubectl apply -n ns` does, and rejects a document whose namespace differs from ns.
func SetNamespace(docs []api.Document, ns string) error {
	for i := range docs {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(docs[i].Object, &obj); err != nil {
			continue // not an object: admission says what is wrong with it
		}
		var kind string
		_ = json.Unmarshal(obj["kind"], &kind)
		if kind == "Namespace" || kind == "Node" {
			continue
		}
		meta := map[string]json.RawMessage{}
		if raw, ok := obj["metadata"]; ok {
			if err := json.Unmarshal(raw, &meta); err != nil {
				continue
			}
		}
		var have string
		_ = json.Unmarshal(meta["namespace"], &have)
		switch {
		case have == ns:
			continue
		case have != "":
			return fmt.Errorf("%s: the namespace from the provided object %q does not match the namespace %q. You must pass '--namespace=%s' to perform this operation: %w",
				docs[i].Where(), have, ns, have, events.ErrInvalidArgument)
		}
		meta["namespace"], _ = json.Marshal(ns)
		obj["metadata"], _ = json.Marshal(meta)
		b, err := json.Marshal(obj)
		if err != nil {
			return fmt.Errorf("%s: %w", docs[i].Where(), err)
		}
		docs[i].Object = b
	}
	return nil
}
