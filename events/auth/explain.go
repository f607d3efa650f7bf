package auth

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"skiff.dev/events"
)

// explained is an error re-worded for a person: one line saying what was refused and what to
// do. It still matches its class and the original error with errors.Is and errors.As.
type explained struct {
	msg   string
	class error
	cause error
}

func (e *explained) Error() string   { return e.msg }
func (e *explained) Unwrap() []error { return []error{e.class, e.cause} }

// ExplainConnectError turns the server's refusal of credentials into one line naming the
// credentials file, why it was refused (expired at T, revoked, or not signed for this cluster)
// and the command that mints new ones. TLS failures are passed to ExplainTLSError with an
// empty CA path; anything else is returned unchanged.
//
// An expired JWT is refused as a plain authorization violation (the server does not say why),
// so the file's own expiry is compared with the clock to tell that case apart.
func ExplainConnectError(err error, credsPath string) error {
	if err == nil {
		return nil
	}
	if tlsErr := ExplainTLSError(err, ""); tlsErr != err {
		return tlsErr
	}
	var why string
	switch {
	case errors.Is(err, nats.ErrAuthRevoked):
		why = "its user was revoked"
	case errors.Is(err, nats.ErrAuthExpired):
		why = "the user JWT expired"
	case errors.Is(err, nats.ErrAccountAuthExpired):
		return &explained{class: events.ErrFailedPrecondition, cause: err,
			msg: "the server refused the account of the credentials in " + orUnnamed(credsPath) + ": the account JWT expired; re-sign it with the cluster's operator key"}
	case errors.Is(err, nats.ErrAuthorization):
		why = "authorization violation"
	default:
		return err
	}
	if credsPath == "" {
		return &explained{class: events.ErrFailedPrecondition, cause: err,
			msg: "the server refused the connection (" + why + "): this cluster needs credentials; pass --creds FILE or set SKIFF_CREDS"}
	}
	c, rerr := ReadCreds(credsPath)
	if rerr != nil {
		return &explained{class: events.ErrFailedPrecondition, cause: err,
			msg: fmt.Sprintf("the server refused the credentials in %s (%s), and they cannot be read: %v", credsPath, why, rerr)}
	}
	switch {
	case !c.Expires.IsZero() && !c.Expires.After(time.Now()):
		why = fmt.Sprintf("the user JWT of %s expired at %s", c.Identity, c.Expires.Format(time.RFC3339))
	case errors.Is(err, nats.ErrAuthRevoked):
		why = fmt.Sprintf("the user %s (%s) was revoked", c.Identity, c.PublicKey)
	case errors.Is(err, nats.ErrAuthorization):
		why = fmt.Sprintf("authorization violation for %s: the credentials were revoked, or are not signed by this cluster's account key", c.Identity)
	}
	return &explained{class: events.ErrFailedPrecondition, cause: err,
		msg: fmt.Sprintf("the server refused the credentials in %s: %s; %s", credsPath, why, mintHint(c))}
}

// mintHint says how to get new credentials for c's identity.
func mintHint(c Creds) string {
	switch c.Role {
	case RoleNode:
		name, _ := strings.CutPrefix(c.Identity, nodePrefix)
		return fmt.Sprintf("mint new ones with `skiff node creds %s --dir DIR`", name)
	case RoleUser:
		return fmt.Sprintf("mint new ones with `skiff user creds %s --dir DIR`", c.Identity)
	}
	return "mint new ones from the cluster directory's keys (`skiff cluster init` writes creds/" + c.Identity + ".creds)"
}

func orUnnamed(path string) string {
	if path == "" {
		return "(none given)"
	}
	return path
}

// ExplainTLSError turns a failed TLS connection into one line saying what did not match and
// what to do: the server's certificate is not signed by the CA in caPath (or by a system CA
// when caPath is empty), it does not name the host, the server wants TLS from a nats:// URL, or
// the server does not speak TLS at all. Anything else is returned unchanged.
func ExplainTLSError(err error, caPath string) error {
	if err == nil {
		return nil
	}
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		header   tls.RecordHeaderError
		msg      string
	)
	ca := "the system's CAs"
	if caPath != "" {
		ca = "the CA in " + caPath
	}
	switch {
	case errors.As(err, &unknown):
		msg = fmt.Sprintf("TLS: the server's certificate is not signed by %s; pass the cluster's CA with --tls-ca DIR/ca.pem (or SKIFF_CA)", ca)
	case errors.As(err, &hostname):
		msg = fmt.Sprintf("TLS: the server's certificate is not valid for %q (it names %s); connect by a name or address in its certificate, or re-issue it with `skiff cluster init --server NAME=HOST`",
			hostname.Host, strings.Join(append(hostname.Certificate.DNSNames, ipStrings(hostname.Certificate)...), ", "))
	case errors.As(err, &invalid):
		msg = fmt.Sprintf("TLS: the server's certificate is not valid: %v", invalid)
	case errors.As(err, &header):
		msg = "TLS: the server does not speak TLS; use a nats:// URL, or enable TLS in its configuration"
	case errors.Is(err, nats.ErrSecureConnRequired):
		msg = "the server requires TLS: use tls:// URLs in --server (SKIFF_SERVER) and pass the cluster's CA with --tls-ca"
	case strings.Contains(err.Error(), "tls: ") || strings.Contains(err.Error(), "x509: "):
		msg = "TLS handshake failed: " + err.Error() + "; check --tls-ca and the server's certificate"
	default:
		return err
	}
	return &explained{msg: msg, class: events.ErrFailedPrecondition, cause: err}
}

func ipStrings(c *x509.Certificate) []string {
	var out []string
	for _, ip := range c.IPAddresses {
		out = append(out, ip.String())
	}
	return out
}
