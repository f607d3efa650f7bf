package runtime

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
)

// pauseCode is the machine code of the sandbox's pause process per GOARCH:
// block in a system call forever, and do it again if a signal interrupts it.
// As PID 1 of its PID namespace the process ignores every signal it has no
// handler for, so it lives until the runtime sends SIGKILL, which is all a
// pod's namespace holder has to do. It never exits by itself, reaps nothing
// (app containers have their own PID namespaces) and touches no memory.
var pauseCode = map[string]struct {
	machine elf.Machine
	code    []byte
}{
	"amd64": {elf.EM_X86_64, []byte{
		0xb8, 0x22, 0x00, 0x00, 0x00, // mov eax, 34 (pause)
		0x0f, 0x05, // syscall
		0xeb, 0xf7, // jmp back to mov
	}},
	// arm64 has no pause(2); ppoll(NULL, 0, NULL, NULL) blocks the same way.
	"arm64": {elf.EM_AARCH64, le32(
		0xd2800000, // mov x0, #0
		0xd2800001, // mov x1, #0
		0xd2800002, // mov x2, #0
		0xd2800003, // mov x3, #0
		0xd2800928, // mov x8, #73 (ppoll)
		0xd4000001, // svc #0
		0x17fffffa, // b back to the first mov
	)},
}

func le32(words ...uint32) []byte {
	b := make([]byte, 0, 4*len(words))
	for _, w := range words {
		b = binary.LittleEndian.AppendUint32(b, w)
	}
	return b
}

// pauseELF returns a static ELF executable for goarch: a 64-byte ELF header,
// one loadable segment covering the whole file, and the code right after.
func pauseELF(goarch string) ([]byte, error) {
	p, ok := pauseCode[goarch]
	if !ok {
		return nil, fmt.Errorf("no pause program for %s: sandboxes are supported on amd64 and arm64", goarch)
	}
	const (
		base     = 0x400000
		ehsize   = 64
		phsize   = 56
		codeOffs = ehsize + phsize
	)
	size := uint64(codeOffs + len(p.code))
	hdr := elf.Header64{
		Type:      uint16(elf.ET_EXEC),
		Machine:   uint16(p.machine),
		Version:   uint32(elf.EV_CURRENT),
		Entry:     base + codeOffs,
		Phoff:     ehsize,
		Ehsize:    ehsize,
		Phentsize: phsize,
		Phnum:     1,
	}
	copy(hdr.Ident[:], elf.ELFMAG)
	hdr.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	hdr.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	hdr.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	prog := elf.Prog64{
		Type:   uint32(elf.PT_LOAD),
		Flags:  uint32(elf.PF_R | elf.PF_X),
		Vaddr:  base,
		Paddr:  base,
		Filesz: size,
		Memsz:  size,
		Align:  0x1000,
	}
	var buf bytes.Buffer
	binary.Write(&buf, binary.LittleEndian, hdr)
	binary.Write(&buf, binary.LittleEndian, prog)
	buf.Write(p.code)
	return buf.Bytes(), nil
}

// writeSandboxRootfs makes dir a root filesystem holding only /pause and the
// mount points runc needs, so that runc never has to create anything in a
// directory that every sandbox shares.
func writeSandboxRootfs(dir string) error {
	exe, err := pauseELF(goruntime.GOARCH)
	if err != nil {
		return err
	}
	for _, d := range []string{"dev", "proc", "sys", "etc"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return fmt.Errorf("sandbox rootfs: %w", err)
		}
	}
	dst := filepath.Join(dir, "pause")
	if old, err := os.ReadFile(dst); err == nil && bytes.Equal(old, exe) {
		return nil
	}
	// Replace by rename: running sandboxes keep the old inode.
	tmp := dst + ".tmp"
	if err := os.WriteFile(tmp, exe, 0o755); err != nil {
		return fmt.Errorf("sandbox rootfs: %w", err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil { // umask-proof
		return fmt.Errorf("sandbox rootfs: %w", err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("sandbox rootfs: %w", err)
	}
	return nil
}
