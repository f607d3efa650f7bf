package chaos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"time"

	"skiff.dev/tests/cluster"
)

// cliRun is one run of the skiff CLI as a user runs it: what it printed, its exit status, and
// how long it took from exec to exit.
type cliRun struct {
	stdout, stderr string
	code           int
	took           time.Duration
	// cpu is the CPU time the CLI process used (user and system).
	cpu time.Duration
	// results are the lines "KIND/NAME ACTION" of an apply, by object ("deployment.apps/web").
	results map[string]string
}

// runCLI runs `skiff args...` with stdin in the cluster's control plane namespace and waits for
// it. A CLI that cannot be started at all is an error; a non-zero exit is not (see code).
func runCLI(ctx context.Context, c *cluster.Cluster, stdin string, args ...string) (cliRun, error) {
	cmd := c.SkiffCommand(ctx, args...)
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(stdin), &out, &errb
	start := time.Now()
	err := cmd.Run()
	r := cliRun{stdout: out.String(), stderr: errb.String(), took: time.Since(start)}
	if ps := cmd.ProcessState; ps != nil {
		r.cpu = ps.UserTime() + ps.SystemTime()
	}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		return r, fmt.Errorf("skiff %s: %w", strings.Join(args, " "), err)
	}
	r.results = applyResults(r.stdout)
	return r, nil
}

// applyResults reads what `skiff apply` prints per object: "deployment.apps/web configured".
func applyResults(stdout string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(stdout, "\n") {
		if f := strings.Fields(line); len(f) == 2 && strings.Contains(f[0], "/") {
			out[f[0]] = f[1]
		}
	}
	return out
}

// String is the run for a failure message.
func (r cliRun) String() string {
	return fmt.Sprintf("exit %d after %v; stdout %q; stderr %q", r.code, r.took.Round(time.Millisecond), r.stdout, r.stderr)
}

// latencyPercentile is the p-th percentile (0 < p <= 100) of ds by the nearest-rank method.
func latencyPercentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(p/100*float64(len(s))+0.999999) - 1
	return s[min(max(rank, 0), len(s)-1)]
}

func roundMS(d time.Duration) string { return d.Round(time.Millisecond).String() }
