package auth

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/nats-io/nats.go"

	"skiff.dev/events"
)

func TestExplain(t *testing.T) {
	keys, err := NewKeys()
	if err != nil {
		t.Fatal(err)
	}
	data, err := keys.UserCreds(RoleUser, "alice", 0)
	if err != nil {
		t.Fatal(err)
	}
	creds := filepath.Join(t.TempDir(), "alice.creds")
	if err := os.WriteFile(creds, data, 0o600); err != nil {
		t.Fatal(err)
	}
	cert := &x509.Certificate{DNSNames: []string{"n1", "localhost"}, IPAddresses: []net.IP{net.ParseIP("10.0.0.1")}}
	other := errors.New("nats: timeout")
	for _, tc := range []struct {
		name  string
		err   error
		creds string
		want  string
	}{
		{"unknown CA", &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}, creds,
			"TLS: the server's certificate is not signed by the system's CAs; pass the cluster's CA with --tls-ca DIR/ca.pem (or SKIFF_CA)"},
		{"wrong host", fmt.Errorf("nats: tls: %w", x509.HostnameError{Certificate: cert, Host: "10.0.0.9"}), creds,
			`TLS: the server's certificate is not valid for "10.0.0.9" (it names n1, localhost, 10.0.0.1); connect by a name or address in its certificate, or re-issue it with ` + "`skiff cluster init --server NAME=HOST`"},
		{"not TLS", tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}, creds,
			"TLS: the server does not speak TLS; use a nats:// URL, or enable TLS in its configuration"},
		{"TLS required", nats.ErrSecureConnRequired, creds,
			"the server requires TLS: use tls:// URLs in --server (SKIFF_SERVER) and pass the cluster's CA with --tls-ca"},
		{"revoked", nats.ErrAuthRevoked, creds,
			"the server refused the credentials in " + creds + ": the user alice (" + mustCreds(t, creds).PublicKey + ") was revoked; mint new ones with `skiff user creds alice --dir DIR`"},
		{"no creds", nats.ErrAuthorization, "",
			"the server refused the connection (authorization violation): this cluster needs credentials; pass --creds FILE or set SKIFF_CREDS"},
		{"unreadable creds", nats.ErrAuthorization, creds + ".nope",
			"the server refused the credentials in " + creds + ".nope (authorization violation), and they cannot be read: read credentials: open " + creds + ".nope: no such file or directory"},
		{"other", other, creds, "nats: timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ExplainConnectError(tc.err, tc.creds)
			if got.Error() != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
			if !errors.Is(got, tc.err) && !errors.As(got, new(x509.HostnameError)) {
				t.Errorf("%v does not wrap %v", got, tc.err)
			}
			if tc.err != other && !errors.Is(got, events.ErrFailedPrecondition) {
				t.Errorf("%v is not a failed precondition", got)
			}
		})
	}
}

func mustCreds(t *testing.T, path string) Creds {
	c, err := ReadCreds(path)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
