package logs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"skiff.dev/events"
	"skiff.dev/events/api"
	"skiff.dev/services/nodeagent/internal/runtime"
)

// source is one container run's log, opened: its rotated copies and its live file.
type source struct {
	req  api.LogsRequest
	dir  string // the container's log directory
	run  int
	segs []segment // rotated copies, oldest first, then the live file
	// rot is the live file's newest rotated copy (<run>.log.1) as last seen: a different file
	// there means the live file was rotated since.
	rot fs.FileInfo
	buf []byte
}

// segment is one open file of a run, with its size when opened.
type segment struct {
	f    *os.File
	size int64
}

// openSource finds and opens the run req asks for. Errors wrap events.ErrNotFound when the pod,
// the container or the previous run has no log on this node.
func openSource(root, node string, req api.LogsRequest) (*source, error) {
	ref := runtime.PodRef{UID: req.UID, Name: req.Pod, Namespace: req.Namespace}
	dir := filepath.Dir(runtime.LogPath(root, ref, req.Container, 0))
	if _, err := os.Stat(filepath.Dir(dir)); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("pod %q (uid %s) has no logs on node %s: it has not started there yet, or it is gone: %w",
			req.Pod, req.UID, node, events.ErrNotFound)
	}
	runs, err := listRuns(dir)
	if err != nil {
		return nil, err
	}
	if len(runs) == 0 {
		return nil, fmt.Errorf("container %q in pod %q has not started yet: it has no logs on node %s: %w",
			req.Container, req.Pod, node, events.ErrNotFound)
	}
	run := runs[len(runs)-1]
	if req.Previous {
		if !slices.Contains(runs, run-1) {
			// The kubelet's wording.
			return nil, fmt.Errorf("previous terminated container %q in pod %q not found: %w", req.Container, req.Pod, events.ErrNotFound)
		}
		run--
	}
	src := &source{req: req, dir: dir, run: run, buf: make([]byte, api.LogsChunkBytes)}
	if err := src.open(); err != nil {
		src.close()
		return nil, err
	}
	return src, nil
}

// open opens the run's files: the rotated copies first, so that a rotation meanwhile can only
// make the live file newer than they are, never lose a copy.
func (s *source) open() error {
	for _, k := range s.rotations() {
		p := s.rotatedPath(k)
		f, err := os.Open(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue // shifted or dropped by a rotation meanwhile
		}
		if err != nil {
			return fmt.Errorf("open log: %w", err)
		}
		info, err := f.Stat()
		if err != nil {
			f.Close()
			return fmt.Errorf("open log: %w", err)
		}
		s.segs = append(s.segs, segment{f, info.Size()})
		if k == 1 {
			s.rot = info
		}
	}
	f, err := os.Open(s.livePath())
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("open log: %w", err)
	}
	s.segs = append(s.segs, segment{f, info.Size()})
	return nil
}

func (s *source) close() {
	for _, seg := range s.segs {
		seg.f.Close()
	}
	s.segs = nil
}

func (s *source) livePath() string { return filepath.Join(s.dir, strconv.Itoa(s.run)+".log") }

func (s *source) rotatedPath(k int) string { return s.livePath() + "." + strconv.Itoa(k) }

// rotations lists the numbers of the run's rotated copies, oldest (highest) first.
func (s *source) rotations() []int {
	entries, _ := os.ReadDir(s.dir)
	prefix := strconv.Itoa(s.run) + ".log."
	var ks []int
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok {
			continue
		}
		// Atoi also skips the rotation's temporary file, <run>.log.1.tmp.
		if k, err := strconv.Atoi(rest); err == nil && k >= 1 {
			ks = append(ks, k)
		}
	}
	slices.Sort(ks)
	slices.Reverse(ks)
	return ks
}

// listRuns returns the runs of a container that have a live log file, in ascending order.
func listRuns(dir string) ([]int, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list logs: %w", err)
	}
	var runs []int
	for _, e := range entries {
		n, ok := strings.CutSuffix(e.Name(), ".log")
		if !ok {
			continue
		}
		if r, err := strconv.Atoi(n); err == nil && r >= 0 {
			runs = append(runs, r)
		}
	}
	slices.Sort(runs)
	return runs, nil
}

// chunkSender sends one chunk and waits for the client to take it.
type chunkSender interface {
	send(ctx context.Context, data []byte, last bool) error
}

// send sends the log from where req.TailLines says, and with follow everything written after,
// across rotations and restarts, until the pod is gone or ctx ends; a follower looks for news
// whenever wait's channel fires. It ends the stream with a Last chunk unless ctx ended or the
// client went away.
func (s *source) send(ctx context.Context, snd chunkSender, follow bool, wait func() <-chan time.Time) error {
	i, off := 0, int64(0)
	if t := s.req.TailLines; t != nil && *t >= 0 {
		var err error
		if i, off, err = tailStart(s.segs, *t); err != nil {
			return err
		}
	}
	last := len(s.segs) - 1
	for ; i < last; i++ {
		if err := s.copy(ctx, snd, s.segs[i].f, off, s.segs[i].size); err != nil {
			return err
		}
		off = 0
	}
	live := s.segs[last].f
	for {
		n, err := s.drain(ctx, snd, live, off)
		if err != nil {
			return err
		}
		off += n
		rotated, err := s.rotated(ctx, snd, live, &off)
		if err != nil {
			return err
		}
		if rotated {
			continue
		}
		if !follow {
			return snd.send(ctx, nil, true)
		}
		runs, err := listRuns(s.dir)
		if err != nil {
			return err
		}
		if len(runs) == 0 {
			// The pod's logs were removed with it. What the open file still holds is the end.
			if _, err := s.drain(ctx, snd, live, off); err != nil {
				return err
			}
			return snd.send(ctx, nil, true)
		}
		if next := runs[len(runs)-1]; next > s.run {
			// The container restarted: its old run is over, send the rest of it and go on
			// with the new one.
			if _, err := s.drain(ctx, snd, live, off); err != nil {
				return err
			}
			if f, err := s.switchRun(next); err == nil {
				live, off = f, 0
				continue
			} else if !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wait():
		}
	}
}

// switchRun makes run the one being followed and returns its open live file.
func (s *source) switchRun(run int) (*os.File, error) {
	old := s.run
	s.run = run
	f, err := os.Open(s.livePath())
	if err != nil {
		s.run = old
		return nil, err
	}
	s.segs = append(s.segs, segment{f: f})
	s.rot, _ = os.Stat(s.rotatedPath(1))
	return f, nil
}

// drain sends what f holds from off to its end and returns how much that was.
func (s *source) drain(ctx context.Context, snd chunkSender, f *os.File, off int64) (int64, error) {
	var sent int64
	for {
		n, err := f.ReadAt(s.buf, off+sent)
		if n > 0 {
			if err := snd.send(ctx, s.buf[:n], false); err != nil {
				return sent, err
			}
			sent += int64(n)
		}
		if errors.Is(err, io.EOF) || n == 0 {
			return sent, nil
		}
		if err != nil {
			return sent, fmt.Errorf("read log: %w", err)
		}
	}
}

// copy sends f's bytes from off to end.
func (s *source) copy(ctx context.Context, snd chunkSender, f *os.File, off, end int64) error {
	for off < end {
		b := s.buf[:min(int64(len(s.buf)), end-off)]
		n, err := f.ReadAt(b, off)
		if n > 0 {
			if err := snd.send(ctx, b[:n], false); err != nil {
				return err
			}
			off += int64(n)
		}
		if errors.Is(err, io.EOF) {
			return nil // the file shrank meanwhile
		}
		if err != nil {
			return fmt.Errorf("read log: %w", err)
		}
	}
	return nil
}

// rotated tells whether the live file was rotated or truncated since off was read, and if so
// sends what the rotated copy holds beyond off and sets off to 0.
func (s *source) rotated(ctx context.Context, snd chunkSender, live *os.File, off *int64) (bool, error) {
	info, err := live.Stat()
	if err != nil {
		return false, fmt.Errorf("stat log: %w", err)
	}
	size := info.Size()
	rot, err := os.Stat(s.rotatedPath(1))
	if err != nil {
		rot = nil // none yet, or a rotation is shifting the copies right now
	}
	newCopy := rot != nil && (s.rot == nil || !os.SameFile(s.rot, rot))
	switch {
	case newCopy && size < rot.Size():
		// Copied, then truncated: the copy ends with what was not read yet. (A new copy with
		// the live file still at least as long is a rotation between its copy and its
		// truncate: look again next time.)
		s.rot = rot
		if *off < rot.Size() {
			f, err := os.Open(s.rotatedPath(1))
			if err != nil {
				return false, fmt.Errorf("open rotated log: %w", err)
			}
			err = s.copy(ctx, snd, f, *off, rot.Size())
			f.Close()
			if err != nil {
				return false, err
			}
		}
		*off = 0
		return true, nil
	case size < *off:
		// Truncated with no copy to read the rest from (a rotation keeping one file).
		*off = 0
		return true, nil
	}
	return false, nil
}

// tailStart returns where the last n lines of segs begin: the index of a segment and the offset
// in it. A last line without a final newline counts as a line, as tail(1) has it.
func tailStart(segs []segment, n int64) (int, int64, error) {
	last := len(segs) - 1
	if n == 0 {
		return last, segs[last].size, nil
	}
	buf := make([]byte, 32<<10)
	var lines int64
	first := true
	for i := last; i >= 0; i-- {
		end := segs[i].size
		for end > 0 {
			start := max(0, end-int64(len(buf)))
			b := buf[:end-start]
			if _, err := segs[i].f.ReadAt(b, start); err != nil && !errors.Is(err, io.EOF) {
				return 0, 0, fmt.Errorf("read log: %w", err)
			}
			for j := len(b) - 1; j >= 0; j-- {
				if first {
					first = false
					if b[j] == '\n' {
						continue // the newline ending the last line
					}
				}
				if b[j] == '\n' {
					if lines++; lines == n {
						return i, start + int64(j) + 1, nil
					}
				}
			}
			end = start
		}
	}
	return 0, 0, nil
}
