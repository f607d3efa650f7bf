package rules

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// nfSocket is a NETLINK_NETFILTER socket that sends whole nftables transactions.
//
// It is a bare socket rather than a netlink library connection for three reasons: a transaction
// must go out in one sendmsg (nfnetlink only treats a batch as one transaction within one skb), so
// the send buffer has to be raised past net.core.wmem_max with SO_SNDBUFFORCE for large batches;
// every acknowledgement of the batch must be read, including after the first error, or the next
// transaction would read stale ones; and the batch is already one encoded buffer.
//
// The socket belongs to the network namespace of the thread that created it for its whole life.
type nfSocket struct {
	fd     int
	sndbuf int
	rbuf   []byte
}

var _ nftConn = (*nfSocket)(nil)

const (
	rcvBufBytes    = 4 << 20
	minSndBufBytes = 1 << 20
	ackTimeout     = 30 * time.Second // only if the caller's context has no deadline
)

func openNFSocket() (*nfSocket, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, fmt.Errorf("open netfilter netlink socket: %w", err)
	}
	s := &nfSocket{fd: fd, rbuf: make([]byte, 64<<10)}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		s.close()
		return nil, fmt.Errorf("bind netfilter netlink socket: %w", err)
	}
	// Acknowledgements carry only the header of the failed message, not all of it (an element
	// message is up to 60 KiB), and errors carry the kernel's explanation when it has one.
	for _, opt := range []int{unix.NETLINK_CAP_ACK, unix.NETLINK_EXT_ACK} {
		if err := unix.SetsockoptInt(fd, unix.SOL_NETLINK, opt, 1); err != nil {
			s.close()
			return nil, fmt.Errorf("set netlink socket option %d: %w", opt, err)
		}
	}
	if err := setBuffer(fd, unix.SO_RCVBUFFORCE, unix.SO_RCVBUF, rcvBufBytes); err != nil {
		s.close()
		return nil, err
	}
	if err := s.ensureSndBuf(minSndBufBytes); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func (s *nfSocket) close() error {
	if s.fd < 0 {
		return nil
	}
	err := unix.Close(s.fd)
	s.fd = -1
	return err
}

// setBuffer sets a socket buffer size, past the sysctl maximum when we have CAP_NET_ADMIN.
func setBuffer(fd, force, plain, bytes int) error {
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, force, bytes); err == nil {
		return nil
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, plain, bytes); err != nil {
		return fmt.Errorf("set netlink socket buffer to %d bytes: %w", bytes, err)
	}
	return nil
}

// ensureSndBuf makes room for one message of n bytes: netlink refuses a sendmsg larger than the
// send buffer with EMSGSIZE.
func (s *nfSocket) ensureSndBuf(n int) error {
	want := n + 64<<10
	if want <= s.sndbuf {
		return nil
	}
	if err := setBuffer(s.fd, unix.SO_SNDBUFFORCE, unix.SO_SNDBUF, want); err != nil {
		return err
	}
	got, err := unix.GetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_SNDBUF)
	if err != nil {
		return fmt.Errorf("read netlink socket send buffer: %w", err)
	}
	// The kernel doubles the value it was given; less than asked means a capped SO_SNDBUF.
	if got < n+32 {
		return fmt.Errorf("netlink send buffer is %d bytes but the transaction needs %d; run with CAP_NET_ADMIN or raise net.core.wmem_max", got, n)
	}
	s.sndbuf = want
	return nil
}

// kernelError is the kernel's answer to one message of a transaction; it wraps the errno.
type kernelError struct {
	what  string
	errno unix.Errno
	msg   string // the kernel's extended acknowledgement message, if any
}

func (e *kernelError) Error() string {
	s := fmt.Sprintf("%s: %v", e.what, e.errno)
	if e.msg != "" {
		s += " (" + e.msg + ")"
	}
	return s
}

func (e *kernelError) Unwrap() error { return e.errno }

// transact sends a batch and waits for the acknowledgement of each of its messages. The kernel
// processes a batch while the sendmsg call runs and queues every answer before returning, so the
// answers are read without waiting on anything but the socket; the deadline only guards against
// a kernel that breaks that rule. It returns the errors the kernel reported, the first one first.
func (s *nfSocket) transact(ctx context.Context, b *batch) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	buf := b.buf
	if err := s.ensureSndBuf(len(buf)); err != nil {
		return err
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(ackTimeout)
	}
	if err := unix.Sendto(s.fd, buf, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("send nftables transaction of %d bytes: %w", len(buf), err)
	}

	pending := make(map[uint32]string, len(b.msgs))
	for _, m := range b.msgs {
		pending[m.seq] = m.what
	}
	var errs []error
	for len(pending) > 0 {
		timeout := time.Until(deadline)
		if timeout <= 0 {
			return joinErrors(append(errs, fmt.Errorf("nftables transaction: %d of %d messages unacknowledged at the deadline: %w",
				len(pending), len(b.msgs), context.DeadlineExceeded)))
		}
		tv := unix.NsecToTimeval(timeout.Nanoseconds())
		if err := unix.SetsockoptTimeval(s.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return fmt.Errorf("set netlink receive timeout: %w", err)
		}
		n, _, err := unix.Recvfrom(s.fd, s.rbuf, 0)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if errors.Is(err, unix.EAGAIN) {
				continue // timeout: the loop checks the deadline
			}
			// ENOBUFS: answers were dropped, so the outcome is unknown.
			return joinErrors(append(errs, fmt.Errorf("read nftables acknowledgements: %w", err)))
		}
		for data := s.rbuf[:n]; len(data) >= unix.NLMSG_HDRLEN; {
			m, rest, ok := nextMessage(data)
			if !ok {
				return joinErrors(append(errs, errors.New("read nftables acknowledgements: truncated netlink message")))
			}
			data = rest
			if m.typ != unix.NLMSG_ERROR || len(m.data) < 4+unix.SizeofNlMsghdr {
				continue
			}
			seq := m.seq
			if seq == b.begin {
				// The kernel could not even queue the per-message answers (out of memory): it
				// answers the batch as a whole, once.
				return joinErrors(append(errs, &kernelError{what: "nftables transaction", errno: errnoOf(m.data)}))
			}
			what, ok := pending[seq]
			if !ok {
				continue // left over from an earlier transaction
			}
			delete(pending, seq)
			if errno := errnoOf(m.data); errno != 0 {
				errs = append(errs, &kernelError{what: what, errno: errno, msg: extAckMessage(m)})
			}
		}
	}
	return joinErrors(errs)
}

// joinErrors joins the first few errors of a transaction: when one message fails, the kernel
// goes on checking the others against a state that no longer adds up, and reports those too.
func joinErrors(errs []error) error {
	const keep = 4
	if len(errs) > keep {
		errs = append(errs[:keep:keep], fmt.Errorf("and %d more", len(errs)-keep))
	}
	return errors.Join(errs...)
}

func errnoOf(data []byte) unix.Errno {
	return unix.Errno(-int32(binary.NativeEndian.Uint32(data[:4])))
}

type nlMessage struct {
	typ, flags uint16
	seq        uint32
	data       []byte
}

// nextMessage splits the first netlink message off b.
func nextMessage(b []byte) (m nlMessage, rest []byte, ok bool) {
	l := int(binary.NativeEndian.Uint32(b[0:4]))
	if l < unix.NLMSG_HDRLEN || l > len(b) {
		return m, nil, false
	}
	m = nlMessage{
		typ:   binary.NativeEndian.Uint16(b[4:6]),
		flags: binary.NativeEndian.Uint16(b[6:8]),
		seq:   binary.NativeEndian.Uint32(b[8:12]),
		data:  b[unix.NLMSG_HDRLEN:l],
	}
	next := (l + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1)
	if next > len(b) {
		next = len(b)
	}
	return m, b[next:], true
}

// extAckMessage returns NLMSGERR_ATTR_MSG of an error answer. With NETLINK_CAP_ACK the answer
// carries only the header of the failed message, so the attributes start right after it.
func extAckMessage(m nlMessage) string {
	if m.flags&unix.NLM_F_ACK_TLVS == 0 {
		return ""
	}
	attrs := m.data[4+unix.SizeofNlMsghdr:]
	for len(attrs) >= unix.NLA_HDRLEN {
		l := int(binary.NativeEndian.Uint16(attrs[0:2]))
		typ := binary.NativeEndian.Uint16(attrs[2:4])
		if l < unix.NLA_HDRLEN || l > len(attrs) {
			return ""
		}
		if typ == unix.NLMSGERR_ATTR_MSG {
			v := attrs[unix.NLA_HDRLEN:l]
			for len(v) > 0 && v[len(v)-1] == 0 {
				v = v[:len(v)-1]
			}
			return string(v)
		}
		next := (l + unix.NLA_ALIGNTO - 1) &^ (unix.NLA_ALIGNTO - 1)
		if next > len(attrs) {
			return ""
		}
		attrs = attrs[next:]
	}
	return ""
}
