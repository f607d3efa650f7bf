package startup

import (
	"bufio"
	"strings"
	"time"
)

// AddAgentLog fills the SandboxStarted, NetworkUp and ContainerCreated times of pods from a node
// agent's log, written by log/slog's text handler at level debug:
//
//	time=2026-11-27T18:05:29.026Z level=DEBUG msg="sandbox started" node=node1 pod=default/web-1 id=…
//	time=… level=INFO msg="pod network set up" node=node1 pod=<pod UID> netns=… ip=10.88.0.5
//	time=… level=DEBUG msg="container created" node=node1 pod=default/web-1 container=web id=…
//
// The runtime names a pod namespace/name, the pod network by its UID. Only the first line of
// each kind per pod counts; lines that do not parse are skipped.
func AddAgentLog(pods []Pod, log string) {
	byKey := map[string]*Pod{}
	for i := range pods {
		p := &pods[i]
		byKey[p.Namespace+"/"+p.Name] = p
		byKey[p.UID] = p
	}
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := logfmt(sc.Text())
		p := byKey[f["pod"]]
		if p == nil {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, f["time"])
		if err != nil {
			continue
		}
		switch f["msg"] {
		case "sandbox started":
			setFirst(&p.SandboxStarted, at)
		case "pod network set up":
			setFirst(&p.NetworkUp, at)
		case "container created":
			setFirst(&p.ContainerCreated, at)
		}
	}
}

// CountLines counts the lines of log with message msg stamped within [from, to].
func CountLines(log, msg string, from, to time.Time) int {
	n := 0
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if !strings.Contains(sc.Text(), msg) {
			continue
		}
		f := logfmt(sc.Text())
		at, err := time.Parse(time.RFC3339Nano, f["time"])
		if err == nil && f["msg"] == msg && !at.Before(from) && !at.After(to) {
			n++
		}
	}
	return n
}

// logfmt splits one line of key=value pairs, where a value may be a Go-quoted string.
func logfmt(line string) map[string]string {
	out := map[string]string{}
	for len(line) > 0 {
		line = strings.TrimLeft(line, " ")
		eq := strings.IndexByte(line, '=')
		if eq <= 0 {
			break
		}
		key := line[:eq]
		line = line[eq+1:]
		var val string
		if strings.HasPrefix(line, `"`) {
			// Find the closing quote, skipping escaped ones.
			end := 1
			for end < len(line) && line[end] != '"' {
				if line[end] == '\\' {
					end++
				}
				end++
			}
			if end >= len(line) {
				break
			}
			val = strings.ReplaceAll(line[1:end], `\"`, `"`)
			line = line[end+1:]
		} else {
			sp := strings.IndexByte(line, ' ')
			if sp < 0 {
				sp = len(line)
			}
			val, line = line[:sp], line[sp:]
		}
		out[key] = val
	}
	return out
}
