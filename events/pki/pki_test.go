package pki

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var now = time.Now()

func parse(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode(certPEM)
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestServerCert(t *testing.T) {
	ca, err := NewCA("skiff CA", now)
	if err != nil {
		t.Fatal(err)
	}
	if ca.Cert.NotAfter.Sub(now) < CAValidity-time.Hour || !ca.Cert.IsCA {
		t.Errorf("CA valid until %v, IsCA %v", ca.Cert.NotAfter, ca.Cert.IsCA)
	}
	sc, err := ca.ServerCert("n1", []string{"10.0.0.1", "n1.example.com", "localhost"}, now)
	if err != nil {
		t.Fatal(err)
	}
	c := parse(t, sc.CertPEM)
	var ips []string
	for _, ip := range c.IPAddresses {
		ips = append(ips, ip.String())
	}
	if d := cmp.Diff([]string{"n1.example.com", "localhost", "n1"}, c.DNSNames); d != "" {
		t.Errorf("DNS SANs (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"10.0.0.1", "127.0.0.1"}, ips); d != "" {
		t.Errorf("IP SANs (-want +got):\n%s", d)
	}
	for _, host := range []string{"10.0.0.1", "n1.example.com", "n1", "localhost", "127.0.0.1"} {
		for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
			if _, err := c.Verify(x509.VerifyOptions{DNSName: host, Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
				t.Errorf("verify for %s, usage %v: %v", host, usage, err)
			}
		}
	}
	if _, err := c.Verify(x509.VerifyOptions{DNSName: "10.0.0.2", Roots: ca.Pool()}); err == nil {
		t.Error("verified for a host not in the SANs")
	}
	other, _ := NewCA("other", now)
	if _, err := c.Verify(x509.VerifyOptions{DNSName: "n1", Roots: other.Pool()}); err == nil {
		t.Error("verified against another CA")
	}
}

func TestSaveLoadCA(t *testing.T) {
	dir := t.TempDir()
	ca, err := NewCA("skiff CA", now)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
	if err := ca.Save(certFile, keyFile); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(keyFile); fi.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v, want 0600", fi.Mode().Perm())
	}
	loaded, err := LoadCA(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := loaded.ServerCert("n1", nil, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parse(t, sc.CertPEM).Verify(x509.VerifyOptions{DNSName: "n1", Roots: ca.Pool()}); err != nil {
		t.Errorf("certificate from the loaded CA: %v", err)
	}
	other, _ := NewCA("other", now)
	otherKey := filepath.Join(dir, "other-key.pem")
	other.Save(filepath.Join(dir, "other.pem"), otherKey)
	if _, err := LoadCA(certFile, otherKey); err == nil || !strings.Contains(err.Error(), "is not the private key") {
		t.Errorf("LoadCA with another key: %v", err)
	}
	if _, err := LoadCA(keyFile, keyFile); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("LoadCA of a key as certificate: %v", err)
	}
}

func TestHandshake(t *testing.T) {
	ca, _ := NewCA("skiff CA", now)
	other, _ := NewCA("other", now)
	sc, _ := ca.ServerCert("n1", nil, now)
	cc, _ := ca.ServerCert("n2", nil, now) // a route's client end uses its server certificate
	serverPair, err := tls.X509KeyPair(sc.CertPEM, sc.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	clientPair, err := tls.X509KeyPair(cc.CertPEM, cc.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		roots   *x509.CertPool
		wantErr string
	}{
		{"same CA", ca.Pool(), ""},
		{"other CA", other.Pool(), "certificate signed by unknown authority"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
				Certificates: []tls.Certificate{serverPair}, ClientCAs: ca.Pool(), ClientAuth: tls.RequireAndVerifyClientCert,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				c.(*tls.Conn).Handshake()
				io.WriteString(c, "ok")
			}()
			d := &net.Dialer{Timeout: 5 * time.Second}
			conn, err := tls.DialWithDialer(d, "tcp", ln.Addr().String(), &tls.Config{
				RootCAs: tc.roots, ServerName: "n1", Certificates: []tls.Certificate{clientPair},
			})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("dial: %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			b, err := io.ReadAll(conn)
			if err != nil || string(b) != "ok" {
				t.Fatalf("read %q, %v", b, err)
			}
		})
	}
}
