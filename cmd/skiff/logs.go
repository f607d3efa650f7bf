package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
	"github.com/spf13/cobra"

	"skiff.dev/events"
	"skiff.dev/events/api"
	"skiff.dev/events/client"
	"skiff.dev/events/table"
)

func init() { register(newLogsCmd) }

// logsOptions are `skiff logs`' flags.
type logsOptions struct {
	container string
	follow    bool
	previous  bool
	tail      int64
}

func newLogsCmd(a *app) *cobra.Command {
	var o logsOptions
	cmd := &cobra.Command{
		Use:   "logs POD [-c CONTAINER]",
		Short: "Print the logs of a container in a pod",
		Long: "logs prints what a container of a pod wrote to stdout and stderr. It asks the scheduler where the\n" +
			"pod runs, then the node agent of that node, which reads the container's log files.",
		Example: "  skiff logs web-7d4b9c6f5-x2x9q\n  skiff logs -f web-7d4b9c6f5-x2x9q -c sidecar\n" +
			"  skiff logs --previous --tail 20 web-7d4b9c6f5-x2x9q",
		Args: argsRange(1, 2, "POD [CONTAINER]"),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if kind, n, ok := strings.Cut(name, "/"); ok {
				if res, found := table.Lookup(kind); !found || res.Plural != table.Pods {
					return usage(cmd, "skiff logs reads the logs of pods; %q is not a pod", name)
				}
				name = n
			}
			if len(args) == 2 {
				if o.container != "" {
					return usage(cmd, "only one of -c or an inline [CONTAINER] arg is allowed")
				}
				o.container = args[1]
			}
			return a.logs(cmd.Context(), name, o)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.container, "container", "c", "", "the container to print the logs of; needed when the pod has several")
	f.BoolVarP(&o.follow, "follow", "f", false, "keep printing what the container writes, until the pod is gone or Ctrl-C")
	f.BoolVarP(&o.previous, "previous", "p", false, "print the logs of the container's previous run (before its last restart)")
	f.Int64Var(&o.tail, "tail", -1, "print only this many of the last lines; -1 prints everything")
	return cmd
}

func (a *app) logs(ctx context.Context, name string, o logsOptions) error {
	res, _ := table.Lookup(table.Pods)
	raw, err := a.getObject(ctx, res, a.namespace, name)
	if err != nil {
		return err
	}
	var pod events.Pod
	if err := decode(raw, &pod); err != nil {
		return err
	}
	container, err := pickContainer(&pod, o.container)
	if err != nil {
		return err
	}
	node := pod.Spec.NodeName
	if node == "" {
		return notScheduled(&pod)
	}
	req := api.LogsRequest{
		Namespace: pod.Metadata.Namespace, Pod: pod.Metadata.Name, UID: pod.Metadata.UID, Container: container,
		Previous: o.previous,
		// A pod that ended, or a container that exited, writes nothing more: following it
		// would wait for the pod's deletion (or a restart). kubectl's follow ends there too.
		Follow: o.follow && pod.Status.Phase != events.PodSucceeded && pod.Status.Phase != events.PodFailed &&
			!exited(&pod, container),
	}
	if o.tail >= 0 {
		req.TailLines = &o.tail
	}
	err = a.streamLogs(ctx, node, req)
	var ae *api.Error
	if errors.As(err, &ae) && errors.Is(err, events.ErrNotFound) && !o.previous {
		if reason, waiting := waitingReason(&pod, container); waiting {
			// The kubelet's wording.
			return errorf(events.ErrFailedPrecondition, "container %q in pod %q is waiting to start: %s", container, pod.Metadata.Name, reason)
		}
	}
	if errors.Is(err, context.Canceled) && req.Follow {
		return nil // Ctrl-C ends a follow: following was all it was asked to do
	}
	return err
}

// exited reports whether the container's last report says it exited (and has not started again).
func exited(pod *events.Pod, container string) bool {
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.Name == container {
			return cs.State.Terminated != nil
		}
	}
	return false
}

// pickContainer is the container whose logs to print: the one named, or the pod's only one.
func pickContainer(pod *events.Pod, name string) (string, error) {
	var names []string
	for _, c := range pod.Spec.Containers {
		names = append(names, c.Name)
		if c.Name == name {
			return name, nil
		}
	}
	switch {
	case name != "":
		return "", errorf(events.ErrInvalidArgument, "container %s is not valid for pod %s", name, pod.Metadata.Name)
	case len(names) == 1:
		return names[0], nil
	case len(names) == 0:
		return "", errorf(events.ErrFailedPrecondition, "pod %s has no containers", pod.Metadata.Name)
	}
	// kubectl's wording.
	return "", errorf(events.ErrInvalidArgument, "a container name must be specified for pod %s, choose one of: %v", pod.Metadata.Name, names)
}

// notScheduled explains why a pod has no logs yet: no node runs it.
func notScheduled(pod *events.Pod) error {
	why := "the scheduler has not placed it yet"
	for _, c := range pod.Status.Conditions {
		if c.Type == "PodScheduled" && c.Status == "False" && c.Message != "" {
			why = c.Message
		}
	}
	return errorf(events.ErrFailedPrecondition, "pod %s is not scheduled to a node, so it has no logs yet: %s", pod.Metadata.Name, why)
}

// waitingReason says whether a container has not run yet, and why.
func waitingReason(pod *events.Pod, container string) (string, bool) {
	for _, s := range pod.Status.ContainerStatuses {
		if s.Name != container {
			continue
		}
		if s.State.Running != nil || s.State.Terminated != nil || s.LastTerminationState.Terminated != nil {
			return "", false
		}
		if s.State.Waiting != nil && s.State.Waiting.Reason != "" {
			return s.State.Waiting.Reason, true
		}
	}
	switch pod.Status.Phase {
	case events.PodRunning, events.PodSucceeded, events.PodFailed:
		return "", false
	}
	return "ContainerCreating", true
}

// streamLogs asks the agent of node for a container's log and copies it to stdout as it comes.
// Each chunk is answered only after it is written, which is the agent's signal to read the
// next: a slow terminal slows the agent down instead of piling chunks up in memory.
func (a *app) streamLogs(ctx context.Context, node string, req api.LogsRequest) error {
	nc, err := a.conn()
	if err != nil {
		return err
	}
	// Under the identity's own inboxes, with a "logs" token: nodes may send only there.
	req.Inbox = api.LogsInbox(client.InboxPrefix(a.identity), nuid.Next())
	chunks, err := nc.SubscribeSync(req.Inbox)
	if err != nil {
		return fmt.Errorf("subscribe %s: %w", req.Inbox, err)
	}
	defer chunks.Unsubscribe()
	// heard is when the agent last showed it is alive (unix nanoseconds).
	var heard atomic.Int64
	alive, err := nc.Subscribe(api.LogsAliveSubject(req.Inbox), func(m *nats.Msg) {
		heard.Store(time.Now().UnixNano())
		_ = m.Respond(nil)
	})
	if err != nil {
		return fmt.Errorf("subscribe %s: %w", api.LogsAliveSubject(req.Inbox), err)
	}
	defer alive.Unsubscribe()

	resp, err := a.askAgent(ctx, nc, node, req)
	if err != nil {
		return err
	}
	if resp.Error != nil {
		return resp.Error
	}
	heartbeat := resp.Heartbeat()
	if heartbeat <= 0 {
		heartbeat = 5 * time.Second
	}
	// Probes come every heartbeat; missing three means the agent (or the way to it) is gone.
	silence := 3*heartbeat + time.Second
	heard.Store(time.Now().UnixNano())
	for {
		wctx, cancel := context.WithTimeout(ctx, heartbeat)
		m, err := chunks.NextMsgWithContext(wctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("receive logs: %w", err)
			}
			if time.Since(time.Unix(0, heard.Load())) > silence {
				return errorf(events.ErrUnavailable, "the agent of node %s stopped answering; the log may be incomplete", node)
			}
			continue
		}
		heard.Store(time.Now().UnixNano())
		c, err := api.DecodeLogsChunk(m)
		if err != nil {
			return err
		}
		if c.Error != nil {
			return c.Error
		}
		if len(c.Data) > 0 {
			if _, err := a.Stdout.Write(c.Data); err != nil {
				return fmt.Errorf("write logs: %w", err)
			}
		}
		if err := m.Respond(nil); err != nil && !c.Last {
			return fmt.Errorf("acknowledge logs: %w", err)
		}
		if c.Last {
			return nil
		}
	}
}

// askAgent sends the request and returns the agent's answer.
func (a *app) askAgent(ctx context.Context, nc *nats.Conn, node string, req api.LogsRequest) (*api.LogsResponse, error) {
	data, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode log request: %w", err)
	}
	rctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	m, err := nc.RequestWithContext(rctx, api.LogsSubject(node), data)
	switch {
	case err == nil:
	case errors.Is(err, nats.ErrNoResponders):
		return nil, errorf(events.ErrUnavailable, "no agent answers for node %s: is skiff-nodeagent running there?", node)
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout):
		return nil, errorf(events.ErrUnavailable, "the agent of node %s did not answer within %s; try again or raise --timeout", node, a.timeout)
	default:
		return nil, fmt.Errorf("ask the agent of node %s for logs: %w", node, err)
	}
	var resp api.LogsResponse
	if err := json.Unmarshal(m.Data, &resp); err != nil {
		return nil, fmt.Errorf("the agent of node %s answered something that does not decode: %w", node, err)
	}
	return &resp, nil
}
