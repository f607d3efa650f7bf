package rules

import "context"

// nftConn is what a Syncer needs from netlink: one call that sends a whole nftables transaction
// and waits for the kernel's answer to each of its messages. The kernel's netlink socket
// (nfSocket) is one; Fake, which applies the same bytes to tables in memory, is the other.
//
// The seam is the encoded batch rather than a table/chain/set API because the batch is what the
// kernel sees: a Fake that decodes it tests the encoder along with the plan, and the Syncer
// builds the batch itself (see encode.go for why it does not use google/nftables' Conn).
type nftConn interface {
	// transact sends b and returns the errors the kernel reported for its messages, the first
	// one first, each a *kernelError wrapping the errno. When it returns an error the
	// transaction was not applied (or its outcome is unknown, for a transport error).
	transact(ctx context.Context, b *batch) error
	close() error
}
