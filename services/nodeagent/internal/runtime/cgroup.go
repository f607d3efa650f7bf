package runtime

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
)

// cgroupReader reads the OOM-kill counter of a container's memory cgroup.
// The counter is the authority on "was it OOM-killed": it is there whether
// or not anyone saw containerd's /tasks/oom event, and it lasts until the
// task is deleted (runc removes the cgroup on delete, not on exit).
type cgroupReader struct {
	root string // /sys/fs/cgroup
	v1   bool   // memory controller on a cgroup v1 hierarchy
	// swap says the kernel accounts swap per cgroup, so a memory+swap
	// limit can be set (runc fails on one it cannot write).
	swap bool
}

func newCgroupReader() cgroupReader {
	root := "/sys/fs/cgroup"
	c := cgroupReader{root: root}
	if _, err := os.Stat(filepath.Join(root, "memory", "memory.oom_control")); err == nil {
		c.v1 = true
		_, err := os.Stat(filepath.Join(root, "memory", "memory.memsw.limit_in_bytes"))
		c.swap = err == nil
	} else {
		m, _ := filepath.Glob(filepath.Join(root, "*", "memory.swap.max"))
		c.swap = len(m) > 0
	}
	return c
}

// oomKills returns how many processes the kernel OOM-killed in the cgroup
// at path (the spec's cgroupsPath), and false when that cannot be read.
func (c cgroupReader) oomKills(path string) (int, bool) {
	var file string
	if c.v1 {
		file = filepath.Join(c.root, "memory", path, "memory.oom_control")
	} else {
		file = filepath.Join(c.root, path, "memory.events")
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return 0, false
	}
	return parseOOMKill(data)
}

// parseOOMKill finds the "oom_kill N" line that both memory.oom_control (v1)
// and memory.events (v2) have.
func parseOOMKill(data []byte) (int, bool) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		k, v, ok := bytes.Cut(sc.Bytes(), []byte(" "))
		if ok && string(k) == "oom_kill" {
			n, err := strconv.Atoi(string(v))
			return n, err == nil
		}
	}
	return 0, false
}
