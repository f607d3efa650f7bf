// Package pki makes the TLS material of a Skiff cluster: a cluster CA and one certificate per
// NATS server. Clients verify servers with the CA (--tls-ca); servers verify each other on
// their routes with it (mutual TLS), so a server certificate is good for both ends.
//
// An operator who has a CA of their own loads it (LoadCA) instead of making one; anything that
// can sign (ECDSA, RSA, Ed25519 keys in PEM) will do.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"skiff.dev/events"
)

// Validity periods.
const (
	CAValidity     = 10 * 365 * 24 * time.Hour
	ServerValidity = 5 * 365 * 24 * time.Hour
)

// CA is a certificate authority that signs server certificates.
type CA struct {
	Cert    *x509.Certificate
	CertPEM []byte
	Key     crypto.Signer
	KeyPEM  []byte // nil when the key came from elsewhere and need not be written again
}

// NewCA makes a self-signed ECDSA P-256 CA valid for CAValidity from now.
func NewCA(commonName string, now time.Time) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"Skiff"}},
		NotBefore:             now.Add(-time.Hour), // tolerate clocks a little behind
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("sign CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, CertPEM: pemBlock("CERTIFICATE", der), Key: key, KeyPEM: keyPEM}, nil
}

// LoadCA reads an operator-provided CA: a PEM certificate and its PEM private key (PKCS#8,
// SEC 1 EC or PKCS#1 RSA).
//
// Errors: events.ErrInvalidArgument when a file is not what it should be, or the key is not
// the certificate's, or the certificate is not a CA.
func LoadCA(certFile, keyFile string) (*CA, error) {
	ca, err := ReadCACert(certFile)
	if err != nil {
		return nil, err
	}
	cert := ca.Cert
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("read CA key: %w", err)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, events.Errorf(events.ErrInvalidArgument, "%s: %v", keyFile, err)
	}
	if pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(cert.PublicKey) {
		return nil, events.Errorf(events.ErrInvalidArgument, "%s is not the private key of the certificate in %s", keyFile, certFile)
	}
	return &CA{Cert: cert, CertPEM: pemBlock("CERTIFICATE", cert.Raw), Key: key}, nil
}

// ReadCACert reads an operator's CA certificate without its key: a CA that can verify the
// certificates the operator issued (Cert.Verify) but issue none (Key is nil).
//
// Errors: events.ErrInvalidArgument when the file holds no CA certificate.
func ReadCACert(certFile string) (*CA, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("read CA certificate: %w", err)
	}
	cert, err := parseCert(certFile, certPEM)
	if err != nil {
		return nil, err
	}
	if !cert.IsCA {
		return nil, events.Errorf(events.ErrInvalidArgument, "%s: the certificate is not a CA (basic constraints CA:FALSE)", certFile)
	}
	return &CA{Cert: cert, CertPEM: pemBlock("CERTIFICATE", cert.Raw)}, nil
}

func parseCert(file string, data []byte) (*x509.Certificate, error) {
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, events.Errorf(events.ErrInvalidArgument, "%s: no PEM certificate", file)
	}
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil, events.Errorf(events.ErrInvalidArgument, "%s: %v", file, err)
	}
	return cert, nil
}

// ReadServerCert reads a server certificate and its key, as an operator issued them.
//
// Errors: events.ErrInvalidArgument when a file is not what it should be or the key is not the
// certificate's.
func ReadServerCert(certFile, keyFile string) (*Cert, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("read certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	cert, err := parseCert(certFile, certPEM)
	if err != nil {
		return nil, err
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, events.Errorf(events.ErrInvalidArgument, "%s: %v", keyFile, err)
	}
	if pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(cert.PublicKey) {
		return nil, events.Errorf(events.ErrInvalidArgument, "%s is not the private key of the certificate in %s", keyFile, certFile)
	}
	return &Cert{CertPEM: certPEM, KeyPEM: keyPEM}, nil
}

// Verify checks that c is signed by ca, valid at now, names host, and may serve TLS and be a
// route's client (routes use mutual TLS).
func (c *Cert) Verify(ca *CA, host string, now time.Time) error {
	cert, err := parseCert("certificate", c.CertPEM)
	if err != nil {
		return err
	}
	_, err = cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: host, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}})
	return err
}

// Save writes the CA certificate (0644) and, if it has one to write, its key (0600).
func (ca *CA) Save(certFile, keyFile string) error {
	if err := writeFile(certFile, ca.CertPEM, 0o644); err != nil {
		return err
	}
	if ca.KeyPEM == nil || keyFile == "" {
		return nil
	}
	return writeFile(keyFile, ca.KeyPEM, 0o600)
}

// Pool is a pool holding only the CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Cert is a certificate and its key, PEM-encoded.
type Cert struct {
	CertPEM, KeyPEM []byte
}

// Save writes the certificate (0644) and key (0600).
func (c *Cert) Save(certFile, keyFile string) error {
	if err := writeFile(certFile, c.CertPEM, 0o644); err != nil {
		return err
	}
	return writeFile(keyFile, c.KeyPEM, 0o600)
}

// ServerCert issues the certificate of server name, valid for ServerValidity from now, for
// TLS servers and clients (routes use mutual TLS). Its SANs are hosts (IP addresses or DNS
// names), name, localhost and 127.0.0.1, each once.
func (ca *CA) ServerCert(name string, hosts []string, now time.Time) (*Cert, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key for %s: %w", name, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: name, Organization: []string{"Skiff"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(ServerValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, h := range append(slices.Clone(hosts), name, "localhost", "127.0.0.1") {
		if h == "" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil {
			if !slices.ContainsFunc(tmpl.IPAddresses, ip.Equal) {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			}
		} else if !slices.Contains(tmpl.DNSNames, h) {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	if tmpl.NotAfter.After(ca.Cert.NotAfter) {
		tmpl.NotAfter = ca.Cert.NotAfter
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("sign certificate for %s: %w", name, err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, err
	}
	return &Cert{CertPEM: pemBlock("CERTIFICATE", der), KeyPEM: keyPEM}, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail
	}
	return n
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func encodeKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode key: %w", err)
	}
	return pemBlock("PRIVATE KEY", der), nil
}

func parseKey(data []byte) (crypto.Signer, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, errors.New("no PEM private key")
		}
		var key any
		var err error
		switch b.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(b.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		default:
			continue // e.g. EC PARAMETERS before the key
		}
		if err != nil {
			return nil, err
		}
		s, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("a %T cannot sign", key)
		}
		return s, nil
	}
}

func writeFile(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	// Remove first: WriteFile keeps an existing file's mode, which could be wider.
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.WriteFile(path, data, mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
