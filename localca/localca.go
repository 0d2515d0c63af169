// Package localca is a small certificate authority for labs, tests and
// first deployments: it makes a CA and certificates for a list of host
// names and IP addresses, so TLS (and QUIC, which has no plaintext mode)
// can be tried without a public CA. Keys are ECDSA P-256; leaf
// certificates are valid for 90 days, the CA for ten years.
package localca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// CA is a certificate authority whose key is held in memory.
type CA struct {
	Cert    *x509.Certificate
	CertPEM []byte
	key     *ecdsa.PrivateKey
	keyPEM  []byte
}

// Validity of what the package makes.
const (
	caValidity   = 10 * 365 * 24 * time.Hour
	leafValidity = 90 * 24 * time.Hour
)

// New makes a new CA named name.
func New(name string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("localca: CA key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"Outpost local CA"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("localca: CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("localca: CA certificate: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, CertPEM: pemBlock("CERTIFICATE", der), key: key, keyPEM: keyPEM}, nil
}

// Leaf is an issued certificate with its key, in PEM and ready for use.
type Leaf struct {
	CertPEM []byte // the leaf followed by the CA certificate
	KeyPEM  []byte
	TLS     tls.Certificate
}

// Issue makes a server certificate for hosts (DNS names, wildcards such as
// *.cdn.example, or IP addresses).
func (ca *CA) Issue(hosts []string) (*Leaf, error) {
	if len(hosts) == 0 {
		return nil, errors.New("localca: a certificate needs at least one host")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("localca: key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: hosts[0]},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(leafValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, strings.ToLower(h))
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, fmt.Errorf("localca: certificate for %v: %w", hosts, err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, err
	}
	certPEM := append(pemBlock("CERTIFICATE", der), ca.CertPEM...)
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("localca: %w", err)
	}
	return &Leaf{CertPEM: certPEM, KeyPEM: keyPEM, TLS: pair}, nil
}

// SelfSigned makes a throwaway CA and a certificate for hosts, for a PoP
// told to make its own certificate in memory (labs only).
func SelfSigned(hosts []string) (*Leaf, *CA, error) {
	ca, err := New("Outpost in-memory CA")
	if err != nil {
		return nil, nil, err
	}
	leaf, err := ca.Issue(hosts)
	return leaf, ca, err
}

// Pool returns a certificate pool that trusts the CA.
func (ca *CA) Pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return pool
}

// WriteFiles writes ca.pem and ca-key.pem (the key readable by the owner
// only) into dir, creating it.
func (ca *CA) WriteFiles(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("localca: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), ca.CertPEM, 0o644); err != nil {
		return fmt.Errorf("localca: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ca-key.pem"), ca.keyPEM, 0o600); err != nil {
		return fmt.Errorf("localca: %w", err)
	}
	return nil
}

// WriteFiles writes the certificate chain and key as cert.pem and key.pem
// (the key readable by the owner only) into dir.
func (l *Leaf) WriteFiles(dir, certName, keyName string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("localca: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, certName), l.CertPEM, 0o644); err != nil {
		return fmt.Errorf("localca: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, keyName), l.KeyPEM, 0o600); err != nil {
		return fmt.Errorf("localca: %w", err)
	}
	return nil
}

// Load reads a CA written by WriteFiles.
func Load(dir string) (*CA, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		return nil, fmt.Errorf("localca: %w", err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, "ca-key.pem"))
	if err != nil {
		return nil, fmt.Errorf("localca: %w", err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("localca: %s: %w", dir, err)
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("localca: %s: the CA key is not ECDSA", dir)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil || !cert.IsCA {
		return nil, fmt.Errorf("localca: %s: ca.pem is not a CA certificate", dir)
	}
	return &CA{Cert: cert, CertPEM: certPEM, key: key, keyPEM: keyPEM}, nil
}

func encodeKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("localca: key: %w", err)
	}
	return pemBlock("PRIVATE KEY", der), nil
}

func pemBlock(kind string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der})
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}
