package natscluster

import (
	"bufio"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"skiff.dev/events"
	"skiff.dev/events/client"
	"skiff.dev/events/eventstest"
)

// TestTLSRefusals: a client that does not trust the cluster's CA, or speaks plain text, is
// refused with an error that says what to fix.
func TestTLSRefusals(t *testing.T) {
	c := Start(t, Options{})
	// Another cluster's CA: what a client with a stale or wrong config file holds.
	other := filepath.Join(t.TempDir(), "other")
	if out, err := exec.Command(c.SkiffBin, "cluster", "init", "--dir", other, "--server", "x=192.0.2.1").CombinedOutput(); err != nil {
		t.Fatalf("init another cluster: %v\n%s", err, out)
	}
	home := t.TempDir() // no client config file there
	noEnv := func(k string) string {
		if k == "HOME" {
			return home
		}
		return ""
	}
	for _, tc := range []struct {
		name, server, ca string
		class            error
		want             string
	}{
		{"wrong CA", c.URLs, filepath.Join(other, "ca.pem"), events.ErrFailedPrecondition,
			"the server's certificate is not signed by the CA in " + filepath.Join(other, "ca.pem")},
		{"no CA", c.URLs, "", events.ErrFailedPrecondition,
			"the server's certificate is not signed by the system's CAs; pass the cluster's CA with --tls-ca"},
		{"nats:// URL without CA", strings.ReplaceAll(c.URLs, "tls://", "nats://"), "", events.ErrFailedPrecondition,
			"not signed by the system's CAs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc, err := client.Connect(client.Options{
				Server: tc.server, CA: tc.ca, Creds: c.Creds("admin"), Dialer: c.Dialer(), Getenv: noEnv,
			})
			if err == nil {
				nc.Close()
				t.Fatal("connected; want a refusal")
			}
			if !errors.Is(err, tc.class) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q (class %s), want class %s containing %q", err, events.Code(err), events.Code(tc.class), tc.want)
			}
		})
	}

	// A plain-text client that does not upgrade (nats.go does so by itself) is told TLS is
	// required, and the server hangs up on its plain text and says why in its log.
	t.Run("plain text on the wire", func(t *testing.T) {
		s := c.Servers[0]
		conn, err := c.Dialer().Dial("tcp", fmt.Sprintf("%s:%d", s.Address, ClientPort))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(conn)
		info, err := r.ReadString('\n')
		if err != nil || !strings.Contains(info, `"tls_required":true`) {
			t.Fatalf("INFO %q, %v: want tls_required", info, err)
		}
		if _, err := conn.Write([]byte("CONNECT {\"verbose\":false}\r\nPING\r\n")); err != nil {
			t.Fatal(err)
		}
		if line, err := r.ReadString('\n'); err == nil {
			t.Fatalf("the server answered plain text with %q; want it to hang up", line)
		}
		eventstest.EventuallyErr(t, 10*time.Second, "the server logs the refusal", func() error {
			if !strings.Contains(s.Log(), "TLS handshake error") {
				return errors.New("no \"TLS handshake error\" in its log")
			}
			return nil
		})
	})

	// The CA of this cluster works.
	nc, err := client.Connect(client.Options{Server: c.URLs, CA: c.CA(), Creds: c.Creds("admin"), Dialer: c.Dialer(), Getenv: noEnv})
	if err != nil {
		t.Fatalf("with the cluster's CA: %v", err)
	}
	nc.Close()
}
