package runtime

import (
	"bytes"
	"debug/elf"
	"testing"
)

func TestPauseELF(t *testing.T) {
	for _, tc := range []struct {
		arch    string
		machine elf.Machine
	}{{"amd64", elf.EM_X86_64}, {"arm64", elf.EM_AARCH64}} {
		t.Run(tc.arch, func(t *testing.T) {
			exe, err := pauseELF(tc.arch)
			if err != nil {
				t.Fatal(err)
			}
			f, err := elf.NewFile(bytes.NewReader(exe))
			if err != nil {
				t.Fatalf("not an ELF file: %v", err)
			}
			if f.Machine != tc.machine || f.Type != elf.ET_EXEC || f.Class != elf.ELFCLASS64 {
				t.Errorf("header: machine %v type %v class %v", f.Machine, f.Type, f.Class)
			}
			if len(f.Progs) != 1 || f.Progs[0].Type != elf.PT_LOAD || f.Progs[0].Filesz != uint64(len(exe)) {
				t.Fatalf("program headers: %+v", f.Progs)
			}
			p := f.Progs[0]
			if f.Entry < p.Vaddr || f.Entry >= p.Vaddr+p.Memsz || p.Flags&elf.PF_X == 0 {
				t.Errorf("entry %#x outside the executable segment", f.Entry)
			}
		})
	}
	if _, err := pauseELF("mips"); err == nil {
		t.Error("pauseELF(mips) succeeded")
	}
}

func TestParseOOMKill(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		n    int
		ok   bool
	}{
		{"cgroup v1 memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n", 2, true},
		{"cgroup v2 memory.events", "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\noom_group_kill 0\n", 1, true},
		{"no counter (old kernel)", "oom_kill_disable 0\nunder_oom 0\n", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, ok := parseOOMKill([]byte(tc.in))
			if n != tc.n || ok != tc.ok {
				t.Errorf("parseOOMKill = %d, %v; want %d, %v", n, ok, tc.n, tc.ok)
			}
		})
	}
}

func TestCPUConversions(t *testing.T) {
	for _, tc := range []struct {
		millis int64
		quota  int64
		shares uint64
	}{
		{0, 0, 2},
		{1, 1000, 2}, // the kernel's minimum quota is 1ms
		{100, 10_000, 102},
		{250, 25_000, 256},
		{1000, 100_000, 1024},
		{2500, 250_000, 2560},
	} {
		if q := cpuQuota(tc.millis); q != tc.quota {
			t.Errorf("cpuQuota(%d) = %d, want %d", tc.millis, q, tc.quota)
		}
		if s := cpuShares(tc.millis); s != tc.shares {
			t.Errorf("cpuShares(%d) = %d, want %d", tc.millis, s, tc.shares)
		}
	}
}
