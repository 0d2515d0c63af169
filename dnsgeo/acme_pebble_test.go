package dnsgeo

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/crypto/acme"
)

// TestACMEDNS01Pebble runs a real ACME DNS-01 order end to end: Let's
// Encrypt's test server, pebble (a Go tool dependency of this module),
// validates the challenge by asking this DNS server over TCP for the TXT
// record that golang.org/x/crypto/acme's client put through the ACME
// endpoint, and issues the certificate; the client then removes the
// record. It builds pebble with the go command, so it skips with -short
// or where the go command is missing.
func TestACMEDNS01Pebble(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds and runs pebble")
	}
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not on PATH: cannot build pebble (go tool pebble)")
	}
	dir := t.TempDir()
	pebble := filepath.Join(dir, "pebble")
	if out, err := exec.Command(goCmd, "build", "-o", pebble, "github.com/letsencrypt/pebble/v2/cmd/pebble").CombinedOutput(); err != nil {
		t.Fatalf("building pebble (a tool dependency in go.mod): %v\n%s", err, out)
	}

	ts := startServer(t, labConfig(t, staticRecords, nil, labNetworks))
	const token = "0123456789abcdef0123456789abcdef"

	// Pebble's own TLS certificate, and its configuration.
	certFile, keyFile, pool := selfSigned(t, dir)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	// Pebble takes its addresses from its configuration; freeAddr's
	// ports can be taken by another test's listener before pebble binds
	// them, so a start that fails to bind is tried again on other ports.
	var dirURL string
	for attempt := 1; ; attempt++ {
		acmeAddr, mgmtAddr := freeAddr(t), freeAddr(t)
		conf := map[string]any{"pebble": map[string]any{
			"listenAddress": acmeAddr, "managementListenAddress": mgmtAddr,
			"certificate": certFile, "privateKey": keyFile,
			"httpPort": 0, "tlsPort": 0, "ocspResponderURL": "",
			"externalAccountBindingRequired": false,
			"retryAfter":                     map[string]int{"authz": 1, "order": 1},
			"profiles":                       map[string]any{"default": map[string]any{"description": "test", "validityPeriod": 86400}},
		}}
		confFile := filepath.Join(dir, "pebble.json")
		b, _ := json.Marshal(conf)
		if err := os.WriteFile(confFile, b, 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(pebble, "-config", confFile, "-dnsserver", ts.tcp)
		cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0")
		logs := &syncBuffer{}
		cmd.Stdout, cmd.Stderr = logs, logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		t.Cleanup(func() {
			cmd.Process.Kill()
			<-exited
			if t.Failed() {
				t.Logf("pebble's log (attempt %d):\n%s", attempt, logs)
			}
		})
		dirURL = "https://" + acmeAddr + "/dir"
		served := false
		waitFor(t, "pebble to serve its directory or exit", func() bool {
			select {
			case <-exited:
				return true
			default:
			}
			resp, err := hc.Get(dirURL)
			if err != nil {
				return false
			}
			resp.Body.Close()
			served = resp.StatusCode == http.StatusOK
			return served
		})
		if served {
			break
		}
		if attempt == 3 || !strings.Contains(logs.String(), "address already in use") {
			t.Fatalf("pebble exited before serving its directory (attempt %d)", attempt)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	client := &acme.Client{Key: key, DirectoryURL: dirURL, HTTPClient: hc}
	if _, err := client.Register(ctx, &acme.Account{}, acme.AcceptTOS); err != nil {
		t.Fatalf("register: %v", err)
	}
	names := []string{"www.cdn.example", "*.cdn.example"} // two values at one name: the wildcard's and the base's share _acme-challenge.cdn.example
	names = append(names, "cdn.example")
	order, err := client.AuthorizeOrder(ctx, acme.DomainIDs(names...))
	if err != nil {
		t.Fatalf("order: %v", err)
	}
	var presented []ACMERequest
	for _, u := range order.AuthzURLs {
		z, err := client.GetAuthorization(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(z.Challenges, func(c *acme.Challenge) bool { return c.Type == "dns-01" })
		if i < 0 {
			t.Fatalf("no dns-01 challenge for %s", z.Identifier.Value)
		}
		chal := z.Challenges[i]
		value, err := client.DNS01ChallengeRecord(chal.Token)
		if err != nil {
			t.Fatal(err)
		}
		// A wildcard's authorization names the base (RFC 8555 §7.1.3).
		req := ACMERequest{FQDN: "_acme-challenge." + dns.Fqdn(z.Identifier.Value), Value: value}
		if status, body := acmeCall(t, ts, "present", "Bearer "+token, req); status != http.StatusOK {
			t.Fatalf("present %v: %d %s", req, status, body)
		}
		presented = append(presented, req)
		if _, err := client.Accept(ctx, chal); err != nil {
			t.Fatalf("accept: %v", err)
		}
	}
	for _, u := range order.AuthzURLs {
		if _, err := client.WaitAuthorization(ctx, u); err != nil {
			t.Fatalf("authorization %s: %v", u, err)
		}
	}
	ready, err := client.WaitOrder(ctx, order.URI)
	if err != nil {
		t.Fatalf("order: %v", err)
	}
	certKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: names}, certKey)
	if err != nil {
		t.Fatal(err)
	}
	ders, _, err := client.CreateCertFromOrder(ctx, ready, csr, true)
	if err != nil {
		t.Fatalf("finalize: %v", err)
	}
	leaf, err := x509.ParseCertificate(ders[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if !slices.Contains(leaf.DNSNames, n) {
			t.Errorf("certificate names %v lack %s", leaf.DNSNames, n)
		}
	}
	for _, req := range presented {
		if status, body := acmeCall(t, ts, "cleanup", "Bearer "+token, req); status != http.StatusOK {
			t.Errorf("cleanup %v: %d %s", req, status, body)
		}
	}
	for _, name := range []string{"_acme-challenge.www.cdn.example.", "_acme-challenge.cdn.example."} {
		if r := ts.exchange(t, "tcp", query(name, dns.TypeTXT, "", 0)); r.Rcode != dns.RcodeNameError {
			t.Errorf("%s after cleanup: %s %v, want NXDOMAIN", name, dns.RcodeToString[r.Rcode], r.Answer)
		}
	}
}

// freeAddr returns a loopback address with a port free right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// selfSigned writes a self-signed certificate for 127.0.0.1 and
// localhost, and returns its files and a pool that trusts it.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pebble test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}
