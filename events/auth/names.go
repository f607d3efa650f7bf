package auth

import (
	"fmt"
	"strings"

	"skiff.dev/events"
)

// Role is what a user JWT may do; it travels in the JWT as the tag "role:<role>".
type Role string

// The four roles. Their permissions are in Permissions; doc.go says why each has what it has.
const (
	RoleAdmin     Role = "admin"
	RoleScheduler Role = "scheduler"
	RoleNode      Role = "node"
	RoleUser      Role = "user"
)

// Roles lists every role, in the order the docs present them.
var Roles = []Role{RoleAdmin, RoleScheduler, RoleNode, RoleUser}

// ParseRole accepts a role's name.
func ParseRole(s string) (Role, error) {
	for _, r := range Roles {
		if string(r) == s {
			return r, nil
		}
	}
	return "", events.Errorf(events.ErrInvalidArgument, "unknown role %q (known: admin, scheduler, node, user)", s)
}

// nodePrefix starts a node's identity: node X is "node:X". The colon cannot appear in a DNS
// label, so no user name can pose as a node.
const nodePrefix = "node:"

// reserved are names a CLI user may not take: they are, or could be mistaken for, the
// identities of the cluster's own programs.
var reserved = map[string]bool{"admin": true, "scheduler": true, "sys": true, "system": true, "node": true}

// Identity is the JWT name (and event actor) of role's user called name. Admin and scheduler
// have one identity each, so name must be empty or the role's name; a node's name and a user's
// name must be DNS-1123 labels, and a user's must not be reserved.
//
// Errors: events.ErrInvalidArgument for a name that does not fit the role.
func Identity(role Role, name string) (string, error) {
	switch role {
	case RoleAdmin, RoleScheduler:
		if name != "" && name != string(role) {
			return "", events.Errorf(events.ErrInvalidArgument, "the %s identity is %q, not %q", role, role, name)
		}
		return string(role), nil
	case RoleNode:
		if err := checkLabel(name); err != nil {
			return "", events.Errorf(events.ErrInvalidArgument, "invalid node name %q: %v", name, err)
		}
		return nodePrefix + name, nil
	case RoleUser:
		if err := checkLabel(name); err != nil {
			return "", events.Errorf(events.ErrInvalidArgument, "invalid user name %q: %v", name, err)
		}
		if reserved[name] {
			return "", events.Errorf(events.ErrInvalidArgument, "invalid user name %q: reserved for the cluster's own programs", name)
		}
		return name, nil
	}
	return "", events.Errorf(events.ErrInvalidArgument, "unknown role %q", role)
}

// ParseIdentity is the inverse of Identity given the JWT's role tag: it returns the name that
// Identity was called with.
func ParseIdentity(role Role, identity string) (name string, err error) {
	switch role {
	case RoleNode:
		n, ok := strings.CutPrefix(identity, nodePrefix)
		if !ok {
			return "", events.Errorf(events.ErrInvalidArgument, "node identity %q does not start with %q", identity, nodePrefix)
		}
		name = n
	default:
		name = identity
	}
	if got, err := Identity(role, name); err != nil || got != identity {
		return "", events.Errorf(events.ErrInvalidArgument, "identity %q is not a valid %s identity", identity, role)
	}
	return name, nil
}

// InboxPrefix is the prefix of identity's reply subjects; every Skiff client sets it with
// nats.CustomInboxPrefix, and its JWT lets it subscribe below it and nowhere else.
func InboxPrefix(identity string) string { return "_INBOX." + identity }

// CheckName checks that name can name a node, a user or a server: a DNS-1123 label, which is
// one NATS subject token with no wildcard. The error says what is wrong, without the name.
func CheckName(name string) error { return checkLabel(name) }

// checkLabel checks a DNS-1123 label: 1 to 63 lower-case letters, digits and '-', starting and
// ending with a letter or digit. Such a name is one NATS subject token, with no wildcard.
func checkLabel(s string) error {
	if s == "" {
		return fmt.Errorf("must not be empty")
	}
	if len(s) > 63 {
		return fmt.Errorf("must be at most 63 characters")
	}
	for i, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-' && i > 0 && i < len(s)-1:
		default:
			return fmt.Errorf("must be lower-case letters, digits and '-', starting and ending with a letter or digit")
		}
	}
	return nil
}
