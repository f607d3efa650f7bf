package auth

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"

	"skiff.dev/events"
)

// Creds is what a creds file says about its user.
type Creds struct {
	Identity  string    // the JWT name: the event actor and the inbox prefix's last token
	Role      Role      // from the tag role:<role>; empty for the system user
	PublicKey string    // the user's nkey, which revocations name
	IssuedAt  time.Time // when it was signed
	Expires   time.Time // zero when it never expires
}

// ReadCreds reads a creds file's JWT (not its seed).
//
// Errors: events.ErrInvalidArgument when the file is not a creds file.
func ReadCreds(path string) (Creds, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Creds{}, fmt.Errorf("read credentials: %w", err)
	}
	c, err := ParseCreds(data)
	if err != nil {
		return Creds{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// ParseCreds is ReadCreds on the file's contents.
func ParseCreds(data []byte) (Creds, error) {
	token, err := jwt.ParseDecoratedJWT(data)
	if err != nil {
		return Creds{}, events.Errorf(events.ErrInvalidArgument, "not a NATS credentials file: %v", err)
	}
	uc, err := jwt.DecodeUserClaims(token)
	if err != nil {
		return Creds{}, events.Errorf(events.ErrInvalidArgument, "not a NATS credentials file: %v", err)
	}
	c := Creds{Identity: uc.Name, PublicKey: uc.Subject, IssuedAt: time.Unix(uc.IssuedAt, 0).UTC()}
	if uc.Expires > 0 {
		c.Expires = time.Unix(uc.Expires, 0).UTC()
	}
	for _, t := range uc.Tags {
		if r, ok := strings.CutPrefix(t, roleTag); ok {
			c.Role = Role(r)
		}
	}
	return c, nil
}

// IdentityFromCreds is the identity and role a client runs as: the identity names its inbox
// prefix (nats.CustomInboxPrefix(InboxPrefix(identity))) and its commands' last token.
//
// Errors: events.ErrInvalidArgument when the file is not a Skiff creds file.
func IdentityFromCreds(path string) (identity string, role Role, err error) {
	c, err := ReadCreds(path)
	if err != nil {
		return "", "", err
	}
	if _, err := ParseRole(string(c.Role)); err != nil {
		return "", "", events.Errorf(events.ErrInvalidArgument, "%s: the JWT has no Skiff role tag (role:admin, scheduler, node or user)", path)
	}
	if _, err := ParseIdentity(c.Role, c.Identity); err != nil {
		return "", "", fmt.Errorf("%s: %w", path, err)
	}
	return c.Identity, c.Role, nil
}
