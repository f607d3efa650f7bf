package agent

import (
	"slices"
	"strings"
	"testing"

	"skiff.dev/events"
)

// initSummary is summary with the init containers' states first ("init:first=running").
func initSummary(st events.PodStatus) string {
	var parts []string
	for _, c := range st.InitContainerStatuses {
		parts = append(parts, "init:"+containerSummary(c))
	}
	return strings.Join(append(parts, summary(st)), " ")
}

func (h *workerHarness) lastStatus() events.PodStatus {
	h.t.Helper()
	rs := h.status.reports()
	if len(rs) == 0 {
		h.t.Fatal("no status reported")
	}
	return rs[len(rs)-1]
}

// Init containers run one at a time, in order, each to success, before the app container is
// even created; a failed one is restarted after its back-off; the pod is Pending until the last
// succeeds, then Running and Initialized.
func TestWorkerInitContainers(t *testing.T) {
	h := newWorkerHarness(t)
	h.rt.addImage(echo)
	p := testPod("web", "app")
	p.Spec.InitContainers = []events.Container{{Name: "first", Image: echo}, {Name: "second", Image: echo}}
	w := h.worker(p)

	h.mustSync(w, p)
	if got, want := initSummary(h.lastStatus()), "init:first=running init:second=waiting:PodInitializing Pending ip=10.88.0.2 app=waiting:PodInitializing"; got != want {
		t.Fatalf("first pass: %s\nwant %s", got, want)
	}
	h.rt.crash(t, "uid-web", "first", 0)
	h.mustSync(w, p)
	if got, want := initSummary(h.lastStatus()), "init:first=terminated:Completed init:second=running Pending ip=10.88.0.2 app=waiting:PodInitializing"; got != want {
		t.Fatalf("after first succeeded: %s\nwant %s", got, want)
	}
	h.rt.crash(t, "uid-web", "second", 1)
	wait := h.mustSync(w, p)
	if wait <= 0 || !strings.Contains(initSummary(h.lastStatus()), "init:second=waiting:CrashLoopBackOff") {
		t.Fatalf("after second failed: %s, next pass in %v; want a back-off", initSummary(h.lastStatus()), wait)
	}
	h.clock.Step(wait)
	h.mustSync(w, p)
	h.rt.crash(t, "uid-web", "second", 0)
	h.mustSync(w, p)
	st := h.lastStatus()
	if got, want := summary(st), "Running ip=10.88.0.2 app=running"; got != want {
		t.Errorf("initialized: %s, want %s", got, want)
	}
	if st.InitContainerStatuses[1].RestartCount != 1 || !st.InitContainerStatuses[0].Ready || !st.InitContainerStatuses[1].Ready {
		t.Errorf("init statuses %+v: want both ready, the second restarted once", st.InitContainerStatuses)
	}
	if !slices.ContainsFunc(st.Conditions, func(c events.Condition) bool { return c.Type == "Initialized" && c.Status == "True" }) {
		t.Errorf("conditions %+v lack Initialized=True", st.Conditions)
	}
	var order []string
	for _, c := range h.calls.since(0) {
		if strings.HasPrefix(c, "CreateContainer ") {
			order = append(order, strings.Fields(c)[1])
		}
	}
	if want := []string{"web/first", "web/second", "web/second", "web/app"}; !slices.Equal(order, want) {
		t.Errorf("containers created in the order %v, want %v", order, want)
	}
}

// With restartPolicy Never a failed init container fails the pod, and no app container starts.
func TestWorkerInitContainerFailsThePod(t *testing.T) {
	h := newWorkerHarness(t)
	h.rt.addImage(echo)
	p := testPod("web", "app")
	p.Spec.RestartPolicy = events.RestartNever
	p.Spec.InitContainers = []events.Container{{Name: "migrate", Image: echo}}
	w := h.worker(p)
	h.mustSync(w, p)
	h.rt.crash(t, "uid-web", "migrate", 2)
	h.mustSync(w, p)
	st := h.lastStatus()
	if got, want := initSummary(st), "init:migrate=terminated:Error Failed ip=10.88.0.2 app=waiting:PodInitializing"; got != want {
		t.Errorf("%s\nwant %s", got, want)
	}
	for _, c := range h.calls.since(0) {
		if strings.Contains(c, "web/app") {
			t.Errorf("the app container was touched: %s", c)
		}
	}
}
