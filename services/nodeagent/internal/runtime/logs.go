package runtime

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// RotateLogs rotates every live container log under LogDir that is larger
// than LogMaxBytes: it copies the file to <file>.1 (after shifting .1 to .2
// and so on, keeping LogMaxFiles files in all) and truncates it in place.
// The shim keeps writing to the same open file, in append mode, so its next
// write starts the file afresh. One pass; see RunLogRotation for a loop.
func (r *Runtime) RotateLogs(ctx context.Context) error {
	var errs []error
	err := filepath.WalkDir(r.cfg.LogDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil // a pod removed meanwhile
			}
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if d.IsDir() || !strings.HasSuffix(p, ".log") {
			return nil
		}
		info, err := d.Info()
		if err != nil || info.Size() <= r.cfg.LogMaxBytes {
			return nil
		}
		if err := rotateLog(p, r.cfg.LogMaxFiles); err != nil {
			errs = append(errs, err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("rotate logs in %s: %w", r.cfg.LogDir, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("rotate logs: %w (and %d more)", errs[0], len(errs)-1)
	}
	return nil
}

// RunLogRotation calls RotateLogs every interval until ctx ends. A log can
// exceed LogMaxBytes by what the container writes in one interval.
func (r *Runtime) RunLogRotation(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := r.RotateLogs(ctx); err != nil && ctx.Err() == nil {
				r.log.Warn("log rotation", "err", err)
			}
		}
	}
}

func rotateLog(p string, maxFiles int) error {
	if maxFiles > 1 {
		os.Remove(fmt.Sprintf("%s.%d", p, maxFiles-1))
		for i := maxFiles - 2; i >= 1; i-- {
			err := os.Rename(fmt.Sprintf("%s.%d", p, i), fmt.Sprintf("%s.%d", p, i+1))
			if err != nil && !os.IsNotExist(err) {
				return fmt.Errorf("rotate %s: %w", p, err)
			}
		}
		if err := copyFile(p, p+".1"); err != nil {
			return fmt.Errorf("rotate %s: %w", p, err)
		}
	}
	if err := os.Truncate(p, 0); err != nil {
		return fmt.Errorf("rotate %s: truncate: %w", p, err)
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".tmp"
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		os.Remove(tmp)
		return err
	}
	if err := out.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, dst)
}
