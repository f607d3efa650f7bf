package admission

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// A manifest is parsed into an ordered tree rather than map[string]any, so problems are reported
// in the order the user wrote the fields, and duplicate keys are caught instead of silently
// keeping the last.

type nodeKind int

const (
	nodeNull nodeKind = iota
	nodeObject
	nodeArray
	nodeString
	nodeNumber
	nodeBool
)

type node struct {
	kind   nodeKind
	fields []field // nodeObject, in document order
	items  []*node // nodeArray
	text   string  // nodeString: the string; nodeNumber: the number as written
	b      bool
}

type field struct {
	name string
	val  *node
}

// get returns the value of an object's field, or nil.
func (n *node) get(name string) *node {
	if n == nil || n.kind != nodeObject {
		return nil
	}
	for _, f := range n.fields {
		if f.name == name {
			return f.val
		}
	}
	return nil
}

// describe names the JSON type of n for "expected X, got Y" messages.
func (n *node) describe() string {
	switch n.kind {
	case nodeObject:
		return "an object"
	case nodeArray:
		return "a list"
	case nodeString:
		return fmt.Sprintf("the string %q", n.text)
	case nodeNumber:
		return "the number " + n.text
	case nodeBool:
		return fmt.Sprintf("%t", n.b)
	}
	return "null"
}

// maxDepth bounds nesting; no supported manifest comes close, and it keeps hostile input from
// exhausting the stack.
const maxDepth = 64

// parseTree parses one JSON value. Duplicate keys are reported through dup with their path.
func parseTree(data []byte, dup func(path string)) (*node, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	n, err := parseValue(dec, "", 0, dup)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("unexpected data after the object")
	}
	return n, nil
}

func parseValue(dec *json.Decoder, path string, depth int, dup func(string)) (*node, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("nested more than %d levels deep", maxDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		if errors.Is(err, io.EOF) && depth == 0 {
			return nil, fmt.Errorf("empty document")
		}
		return nil, tokenErr(err)
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			n := &node{kind: nodeObject}
			seen := map[string]bool{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, tokenErr(err)
				}
				name, _ := kt.(string)
				v, err := parseValue(dec, join(path, name), depth+1, dup)
				if err != nil {
					return nil, err
				}
				if seen[name] {
					dup(join(path, name))
					continue
				}
				seen[name] = true
				n.fields = append(n.fields, field{name, v})
			}
			if _, err := dec.Token(); err != nil {
				return nil, tokenErr(err)
			}
			return n, nil
		case '[':
			n := &node{kind: nodeArray}
			for i := 0; dec.More(); i++ {
				v, err := parseValue(dec, index(path, i), depth+1, dup)
				if err != nil {
					return nil, err
				}
				n.items = append(n.items, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, tokenErr(err)
			}
			return n, nil
		}
		return nil, fmt.Errorf("unexpected %q", t)
	case string:
		return &node{kind: nodeString, text: t}, nil
	case json.Number:
		return &node{kind: nodeNumber, text: string(t)}, nil
	case bool:
		return &node{kind: nodeBool, b: t}, nil
	case nil:
		return &node{kind: nodeNull}, nil
	}
	return nil, fmt.Errorf("unexpected token %v", tok)
}

func tokenErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("unexpected end of input")
	}
	return err
}
