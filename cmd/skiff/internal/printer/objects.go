package printer

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	"sigs.k8s.io/yaml"
)

// Output formats of objects.
const (
	JSON = "json"
	YAML = "yaml"
)

// WriteList prints items (objects as the scheduler returned them) as a kubectl List in format
// (JSON indented by four spaces, or YAML). Items are copied through, never decoded into Go
// types, so fields this build does not know survive.
func WriteList(w io.Writer, format string, items []json.RawMessage) error {
	switch format {
	case JSON:
		bw := bufio.NewWriterSize(w, 64<<10)
		bw.WriteString("{\n    \"apiVersion\": \"v1\",\n    \"kind\": \"List\",\n    \"items\": [")
		var buf bytes.Buffer
		for i, it := range items {
			if i > 0 {
				bw.WriteByte(',')
			}
			bw.WriteString("\n        ")
			buf.Reset()
			if err := json.Indent(&buf, it, "        ", "    "); err != nil {
				return fmt.Errorf("item %d is not JSON: %w", i, err)
			}
			bw.Write(buf.Bytes())
		}
		if len(items) > 0 {
			bw.WriteString("\n    ")
		}
		bw.WriteString("]\n}\n")
		return bw.Flush()
	case YAML:
		list := struct {
			APIVersion string            `json:"apiVersion"`
			Kind       string            `json:"kind"`
			Items      []json.RawMessage `json:"items"`
		}{"v1", "List", items}
		if list.Items == nil {
			list.Items = []json.RawMessage{}
		}
		data, err := json.Marshal(list)
		if err != nil {
			return fmt.Errorf("encode list: %w", err)
		}
		return writeYAML(w, data)
	}
	return fmt.Errorf("unknown object format %q", format)
}

// WriteObject prints one object in format.
func WriteObject(w io.Writer, format string, obj json.RawMessage) error {
	switch format {
	case JSON:
		var buf bytes.Buffer
		if err := json.Indent(&buf, obj, "", "    "); err != nil {
			return fmt.Errorf("object is not JSON: %w", err)
		}
		buf.WriteByte('\n')
		_, err := w.Write(buf.Bytes())
		return err
	case YAML:
		return writeYAML(w, obj)
	}
	return fmt.Errorf("unknown object format %q", format)
}

// Marshal encodes Go objects for WriteList and WriteObject, the way the scheduler would.
func Marshal(objs ...any) ([]json.RawMessage, error) {
	out := make([]json.RawMessage, 0, len(objs))
	for _, o := range objs {
		b, err := json.Marshal(o)
		if err != nil {
			return nil, fmt.Errorf("encode %T: %w", o, err)
		}
		out = append(out, b)
	}
	return out, nil
}

func writeYAML(w io.Writer, data []byte) error {
	y, err := yaml.JSONToYAML(data)
	if err != nil {
		return fmt.Errorf("convert to YAML: %w", err)
	}
	_, err = w.Write(y)
	return err
}
