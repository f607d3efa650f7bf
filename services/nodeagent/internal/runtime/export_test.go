package runtime

import "context"

// RemoveTask exposes the removal of a task by its ID, the last resort of CreateSandbox, to the
// tests.
func (r *Runtime) RemoveTask(ctx context.Context, id string) error {
	return r.removeTask(r.ns(ctx), id)
}

// SeccompFilter is seccompFilter, for tests that compare installed filters.
var SeccompFilter = seccompFilter

// ForgetCompiledSeccomp makes r hand crun the profile itself again, as without the cache.
func ForgetCompiledSeccomp(r *Runtime) { r.seccomp = nil }

// WaitSeccomp is waitSeccomp, for tests that read a new container's filter.
var WaitSeccomp = waitSeccomp
