package podnet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"skiff.dev/events"
)

// Allocation is one address that host-local holds.
type Allocation struct {
	IP     netip.Addr
	PodID  string
	IfName string
}

// Allocations lists the addresses host-local holds, ordered by address. A leak check compares
// it with the pods that should have one; crash reconciliation calls Teardown(ctx, podID, "")
// for each allocation whose pod no longer exists.
//
// It reads host-local's store without taking its lock, so an allocation being made or
// released at the same moment may or may not be listed.
func (n *Network) Allocations(ctx context.Context) ([]Allocation, error) {
	entries, err := os.ReadDir(n.cfg.allocationDir())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // nothing was ever allocated
	}
	if err != nil {
		return nil, fmt.Errorf("list pod IP allocations: %w", err)
	}
	var out []Allocation
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("list pod IP allocations: %w", err)
		}
		// host-local names each allocation file after its address; its lock file and
		// last_reserved_ip.N are not addresses.
		ip, err := netip.ParseAddr(e.Name())
		if err != nil || !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(n.cfg.allocationDir(), e.Name()))
		if errors.Is(err, fs.ErrNotExist) {
			continue // released while we listed
		}
		if err != nil {
			return nil, fmt.Errorf("list pod IP allocations: %w", err)
		}
		// "<container id>\r\n<ifname>"; files of host-local before v0.7 held only the id.
		id, ifname, _ := strings.Cut(strings.TrimSpace(string(b)), "\r\n")
		out = append(out, Allocation{IP: ip, PodID: strings.TrimSpace(id), IfName: strings.TrimSpace(ifname)})
	}
	slices.SortFunc(out, func(a, b Allocation) int { return a.IP.Compare(b.IP) })
	return out, nil
}

// allocationOf is the address host-local holds for podID's interface, if any.
func (n *Network) allocationOf(ctx context.Context, podID string) (netip.Addr, bool, error) {
	all, err := n.Allocations(ctx)
	if err != nil {
		return netip.Addr{}, false, err
	}
	for _, a := range all {
		if a.PodID == podID && (a.IfName == PodInterface || a.IfName == "") && n.cfg.PodCIDR.Contains(a.IP) {
			return a.IP, true, nil
		}
	}
	return netip.Addr{}, false, nil
}

// podIDPattern is what libcni accepts as a container ID; the ID also names a file of ours.
var podIDPattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`)

func checkPodID(podID string) error {
	if len(podID) > 200 || !podIDPattern.MatchString(podID) {
		return fmt.Errorf("pod id %q must be 1 to 200 letters, digits, '_', '.' or '-', not starting with a punctuation mark: %w", podID, events.ErrInvalidArgument)
	}
	return nil
}

// netnsID identifies a network namespace while it lives: the device and inode of its nsfs file.
type netnsID struct {
	Dev uint64 `json:"dev"`
	Ino uint64 `json:"ino"`
}

// netnsIdentity says which network namespace path refers to. It fails with an error matching
// fs.ErrNotExist when path does not exist (the pod's sandbox process is gone), and with
// events.ErrInvalidArgument when path is not a network namespace.
func netnsIdentity(path string) (netnsID, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return netnsID{}, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(path, &sfs); err != nil {
		return netnsID{}, &fs.PathError{Op: "statfs", Path: path, Err: err}
	}
	if sfs.Type != unix.NSFS_MAGIC {
		return netnsID{}, fmt.Errorf("%s is not a namespace file (want /proc/<pid>/ns/net of the pod's sandbox): %w", path, events.ErrInvalidArgument)
	}
	return netnsID{Dev: st.Dev, Ino: st.Ino}, nil
}

// ownNetns is the network namespace of this process, the node's: the one the CNI plugins,
// which this process starts, run in.
func ownNetns() (netnsID, error) { return netnsIdentity("/proc/self/ns/net") }

// podRecord is what podnet remembers of a pod between Setup and Teardown. It exists so that
// Teardown never deletes an interface in a namespace that is not the pod's: /proc/<pid>/ns/net
// outlives the pod's sandbox process when the PID is reused, and then names another pod's
// namespace, or the node's.
type podRecord struct {
	Netns netnsID `json:"netns"`
}

func (n *Network) podRecordPath(podID string) string {
	return filepath.Join(n.cfg.podRecordDir(), podID+".json")
}

func (n *Network) readPodRecord(podID string) (podRecord, bool, error) {
	b, err := os.ReadFile(n.podRecordPath(podID))
	if errors.Is(err, fs.ErrNotExist) {
		return podRecord{}, false, nil
	}
	if err != nil {
		return podRecord{}, false, fmt.Errorf("read record of pod %s: %w", podID, err)
	}
	var r podRecord
	if err := json.Unmarshal(b, &r); err != nil {
		// A torn write from a crash: treat as absent, Teardown then falls back to its
		// weaker check.
		return podRecord{}, false, nil
	}
	return r, true, nil
}

// writePodRecord replaces the record atomically, so a crash leaves the old or the new one.
func (n *Network) writePodRecord(podID string, r podRecord) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("write record of pod %s: %w", podID, err)
	}
	f, err := os.CreateTemp(n.cfg.podRecordDir(), ".tmp-"+podID+"-*")
	if err != nil {
		return fmt.Errorf("write record of pod %s: %w", podID, err)
	}
	defer os.Remove(f.Name()) // fails harmlessly after the rename
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("write record of pod %s: %w", podID, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write record of pod %s: %w", podID, err)
	}
	if err := os.Rename(f.Name(), n.podRecordPath(podID)); err != nil {
		return fmt.Errorf("write record of pod %s: %w", podID, err)
	}
	return nil
}

func (n *Network) removePodRecord(podID string) error {
	if err := os.Remove(n.podRecordPath(podID)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove record of pod %s: %w", podID, err)
	}
	return nil
}
