package natscluster

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// devConfig writes a TLS cluster without authentication: for developing the harness before
// `skiff cluster init` exists.
func (c *Cluster) devConfig() error {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "dev CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	caCert, _ := x509.ParseCertificate(caDER)
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(c.CA(), caPEM, 0o644); err != nil {
		return err
	}
	var routes []string
	for _, s := range c.Servers {
		routes = append(routes, fmt.Sprintf("tls://%s:%d", s.Address, ClusterPort))
	}
	for i, s := range c.Servers {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(int64(10 + i)), Subject: pkix.Name{CommonName: s.Name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage:    x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			DNSNames:    []string{s.Name, "localhost"}, IPAddresses: []net.IP{net.ParseIP(s.Address), net.ParseIP("127.0.0.1")},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			return err
		}
		kb, _ := x509.MarshalECPrivateKey(key)
		if err := os.MkdirAll(s.Dir, 0o755); err != nil {
			return err
		}
		files := map[string][]byte{
			"ca.pem":         caPEM,
			"server.pem":     pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
			"server-key.pem": pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}),
		}
		for n, b := range files {
			if err := os.WriteFile(filepath.Join(s.Dir, n), b, 0o600); err != nil {
				return err
			}
		}
		conf := fmt.Sprintf(`server_name: %[1]s
listen: "%[2]s:%[3]d"
https: "%[2]s:%[5]d"
tls { cert_file: "server.pem", key_file: "server-key.pem", ca_file: "ca.pem", timeout: 5 }
cluster {
  name: skiff
  listen: "%[2]s:%[4]d"
  routes: [%[6]s]
  tls { cert_file: "server.pem", key_file: "server-key.pem", ca_file: "ca.pem", verify: true, timeout: 5 }
}
jetstream { store_dir: "jetstream", sync_interval: always }
`, s.Name, s.Address, ClientPort, ClusterPort, MonitorPort, strings.Join(routes, ", "))
		if err := os.WriteFile(filepath.Join(s.Dir, "nats.conf"), []byte(conf), 0o644); err != nil {
			return err
		}
	}
	return nil
}
