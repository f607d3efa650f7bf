package manifest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"

	"skiff.dev/events"
	"skiff.dev/events/api"
)

// Stdin is the path that means standard input, and the Source of its documents.
const Stdin = "-"

// Read reads every path in order and returns their objects. stdin is read for the path "-"
// (at most once). Errors wrap events.ErrInvalidArgument for content that is not a manifest;
// I/O errors are returned as they are.
func Read(paths []string, stdin io.Reader) ([]api.Document, error) {
	var docs []api.Document
	usedStdin := false
	for _, p := range paths {
		if p == Stdin {
			if usedStdin {
				return nil, fmt.Errorf("standard input can be read only once, but -f - was given twice: %w", events.ErrInvalidArgument)
			}
			usedStdin = true
			data, err := io.ReadAll(stdin)
			if err != nil {
				return nil, fmt.Errorf("read standard input: %w", err)
			}
			d, err := Parse(Stdin, data)
			if err != nil {
				return nil, err
			}
			docs = append(docs, d...)
			continue
		}
		files, err := expand(p)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				return nil, err
			}
			d, err := Parse(f, data)
			if err != nil {
				return nil, err
			}
			docs = append(docs, d...)
		}
	}
	return docs, nil
}

// expand turns a directory into its manifest files in name order; a file is itself.
func expand(path string) ([]string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return []string{path}, nil
	}
	entries, err := os.ReadDir(path) // sorted by name
	if err != nil {
		return nil, err
	}
	var files []string
	for _, e := range entries {
		switch strings.ToLower(filepath.Ext(e.Name())) {
		case ".yaml", ".yml", ".json":
			if e.Type().IsRegular() || e.Type()&os.ModeSymlink != 0 {
				files = append(files, filepath.Join(path, e.Name()))
			}
		}
	}
	return files, nil
}

// Parse splits one file's content into documents. source names the file in Documents and
// errors.
func Parse(source string, data []byte) ([]api.Document, error) {
	var raws []raw
	var err error
	if looksLikeJSON(data) {
		raws, err = splitJSON(source, data)
	} else {
		raws, err = splitYAML(source, data)
	}
	if err != nil {
		return nil, err
	}
	var docs []api.Document
	for _, r := range raws {
		objs, err := r.objects()
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			docs = append(docs, api.Document{Source: source, Index: len(docs), Object: o})
		}
	}
	return docs, nil
}

// raw is one document of a file as JSON, with where it starts.
type raw struct {
	source string
	line   int // 1-based line of the document's first line in the file
	n      int // 1-based position of the document in the file
	json   []byte
}

func (r raw) where() string { return fmt.Sprintf("%s: document %d (line %d)", r.source, r.n, r.line) }

// objects checks that the document is an object with a kind and expands Lists.
func (r raw) objects() ([]json.RawMessage, error) {
	var head struct {
		APIVersion string            `json:"apiVersion"`
		Kind       string            `json:"kind"`
		Items      []json.RawMessage `json:"items"`
	}
	if t := bytes.TrimSpace(r.json); len(t) == 0 || t[0] != '{' {
		return nil, fmt.Errorf("%s: want an object with apiVersion and kind, got %s: %w", r.where(), describeJSON(t), events.ErrInvalidArgument)
	}
	if err := json.Unmarshal(r.json, &head); err != nil {
		return nil, fmt.Errorf("%s: apiVersion, kind or items has the wrong type: %v: %w", r.where(), err, events.ErrInvalidArgument)
	}
	if head.Kind == "" {
		return nil, fmt.Errorf("%s: \"kind\" is missing (want e.g. kind: Deployment): %w", r.where(), events.ErrInvalidArgument)
	}
	if head.Kind != "List" && !strings.HasSuffix(head.Kind, "List") {
		return []json.RawMessage{r.json}, nil
	}
	for i, it := range head.Items {
		if t := bytes.TrimSpace(it); len(t) == 0 || t[0] != '{' {
			return nil, fmt.Errorf("%s: item %d of the %s: want an object, got %s: %w", r.where(), i+1, head.Kind, describeJSON(t), events.ErrInvalidArgument)
		}
	}
	return head.Items, nil
}

func describeJSON(t []byte) string {
	switch {
	case len(t) == 0:
		return "nothing"
	case t[0] == '[':
		return "a list"
	case t[0] == '"':
		return "a string"
	}
	return strconv.Quote(string(t[:min(len(t), 20)]))
}

func looksLikeJSON(data []byte) bool {
	t := bytes.TrimLeft(data, " \t\r\n\ufeff")
	return len(t) > 0 && (t[0] == '{' || t[0] == '[')
}

// splitJSON reads a stream of JSON values (kubectl accepts several objects in one file).
func splitJSON(source string, data []byte) ([]raw, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	var out []raw
	for {
		start := dec.InputOffset()
		var v json.RawMessage
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			off := dec.InputOffset()
			var se *json.SyntaxError
			if errors.As(err, &se) {
				off = se.Offset
			}
			msg := strings.TrimPrefix(err.Error(), "json: ")
			if errors.Is(err, io.ErrUnexpectedEOF) {
				msg, off = "unexpected end of file", int64(len(data))
			}
			return nil, fmt.Errorf("%s: line %d: %s: %w", source, lineAt(data, off), msg, events.ErrInvalidArgument)
		}
		// The value starts after any whitespace the decoder skipped.
		skip := len(data[start:]) - len(bytes.TrimLeft(data[start:], " \t\r\n"))
		out = append(out, raw{source: source, line: lineAt(data, start+int64(skip)), n: len(out) + 1, json: v})
	}
}

func lineAt(data []byte, off int64) int {
	off = min(max(off, 0), int64(len(data)))
	return bytes.Count(data[:off], []byte("\n")) + 1
}

// yamlLine finds the line number in the YAML parser's messages ("yaml: line 3: ...").
var yamlLine = regexp.MustCompile(`line (\d+): `)

// splitYAML cuts the file at "---" lines and converts each document to JSON. The cut is done
// here, not by the YAML library, so that every document's first line is known and the parser's
// line numbers (which count from the document's start) can be turned into the file's.
func splitYAML(source string, data []byte) ([]raw, error) {
	var out []raw
	var cur bytes.Buffer
	start, n, lineNo := 1, 0, 0
	flush := func() error {
		doc := cur.Bytes()
		defer cur.Reset()
		if blank(doc) {
			return nil
		}
		n++
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return yamlError(source, start, err)
		}
		if bytes.Equal(bytes.TrimSpace(js), []byte("null")) {
			return nil
		}
		out = append(out, raw{source: source, line: start, n: n, json: js})
		return nil
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), len(data)+1)
	for sc.Scan() {
		lineNo++
		line := sc.Text()
		if lineNo == 1 {
			line = strings.TrimPrefix(line, "\ufeff")
		}
		if rest, ok := separator(line); ok {
			if err := flush(); err != nil {
				return nil, err
			}
			// Content after "--- " belongs to the next document and sits on this line.
			start = lineNo
			if strings.TrimSpace(rest) == "" || strings.HasPrefix(strings.TrimSpace(rest), "#") {
				start = lineNo + 1
				continue
			}
			cur.WriteString(rest + "\n")
			continue
		}
		if line == "..." { // end of document marker
			continue
		}
		if cur.Len() == 0 && blankLine(line) {
			// Leading blank lines and comments do not count as the document's start.
			start = lineNo + 1
			continue
		}
		cur.WriteString(line + "\n")
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", source, err)
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return out, nil
}

func separator(line string) (rest string, ok bool) {
	if !strings.HasPrefix(line, "---") {
		return "", false
	}
	rest = line[3:]
	if rest != "" && rest[0] != ' ' && rest[0] != '\t' {
		return "", false
	}
	return rest, true
}

func blankLine(line string) bool {
	t := strings.TrimSpace(line)
	return t == "" || strings.HasPrefix(t, "#")
}

func blank(doc []byte) bool {
	for _, l := range strings.Split(string(doc), "\n") {
		if !blankLine(l) {
			return false
		}
	}
	return true
}

// yamlError rewrites a parser error to name the file and the file's line.
func yamlError(source string, start int, err error) error {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "error converting YAML to JSON: ")
	msg = strings.TrimPrefix(msg, "yaml: ")
	if m := yamlLine.FindStringSubmatchIndex(msg); m != nil {
		n, _ := strconv.Atoi(msg[m[2]:m[3]])
		rest := msg[m[1]:]
		return fmt.Errorf("%s: line %d: %s: %w", source, start+n-1, rest, events.ErrInvalidArgument)
	}
	return fmt.Errorf("%s: line %d: %s: %w", source, start, msg, events.ErrInvalidArgument)
}
