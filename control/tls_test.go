package control_test

import (
	"bufio"
	"context"
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
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/outpost-cdn/outpost/config"
	"github.com/outpost-cdn/outpost/control"
	"github.com/outpost-cdn/outpost/control/bus"
	"github.com/outpost-cdn/outpost/localca"
	"github.com/outpost-cdn/outpost/popapi"
)

// busPKI is a local CA with the bus's certificate (for 127.0.0.1) and a
// client certificate, written as files.
type busPKI struct {
	dir                       string
	caFile, certFile, keyFile string // the bus's
	clientCert, clientKey     string
	otherCA                   string // a CA that did not sign the bus's certificate
}

func newBusPKI(t *testing.T) busPKI {
	t.Helper()
	dir := t.TempDir()
	ca, err := localca.New("outpost bus test CA")
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue([]string{"127.0.0.1", "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	if err := leaf.WriteFiles(dir, "bus.pem", "bus.key"); err != nil {
		t.Fatal(err)
	}
	other, err := localca.New("someone else's CA")
	if err != nil {
		t.Fatal(err)
	}
	if err := other.WriteFiles(filepath.Join(dir, "other")); err != nil {
		t.Fatal(err)
	}
	p := busPKI{dir: dir, caFile: filepath.Join(dir, "ca.pem"), certFile: filepath.Join(dir, "bus.pem"), keyFile: filepath.Join(dir, "bus.key"),
		clientCert: filepath.Join(dir, "client.pem"), clientKey: filepath.Join(dir, "client.key"), otherCA: filepath.Join(dir, "other", "ca.pem")}
	issueClient(t, ca, filepath.Join(dir, "ca-key.pem"), p.clientCert, p.clientKey)
	return p
}

// issueClient signs a client certificate with the CA's key: localca
// issues server certificates only (ExtKeyUsageServerAuth), which a TLS
// server refuses from a client.
func issueClient(t *testing.T, ca *localca.CA, caKeyFile, certFile, keyFile string) {
	t.Helper()
	b, err := os.ReadFile(caKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	caKey, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "prg"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestTLS runs the bus with a TLS listener (certificates from localca),
// once with server TLS only and once requiring client certificates, and
// checks that a purge and a config push work for clients that verify it
// with control.tls.ca_file, and that a client without the CA, a client
// without a certificate (mutual TLS) and a plaintext client are refused.
func TestTLS(t *testing.T) {
	pki := newBusPKI(t)
	tests := []struct {
		name   string
		mutual bool
	}{
		{"server TLS", false},
		{"mutual TLS", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stls := config.ControlServerTLS{CertFile: pki.certFile, KeyFile: pki.keyFile}
			clientTLS := "  tls: {ca_file: " + pki.caFile + "}\n"
			if tt.mutual {
				stls.CAFile = pki.caFile
				clientTLS = fmt.Sprintf("  tls: {ca_file: %s, cert_file: %s, key_file: %s}\n", pki.caFile, pki.clientCert, pki.clientKey)
			}
			s, err := bus.Start(context.Background(), bus.Options{Listen: "127.0.0.1:0", StoreDir: t.TempDir(), Users: users("prg", "iad"), TLS: stls, Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(s.Shutdown)
			path := cdnFile(t, t.TempDir(), s.ClientURL(), []string{"prg", "iad"}, clientTLS)
			cfg := loadCDN(t, path)
			if !strings.HasPrefix(cfg.Control.Servers[0], "tls://") {
				t.Fatalf("servers %v, want tls://", cfg.Control.Servers)
			}

			t.Run("a purge and a config push over TLS", func(t *testing.T) {
				ops := dial(t, cfg.Control, operator, "ops", "ops-pw")
				if !ops.NATS().TLSRequired() {
					t.Error("the operator's connection is not TLS")
				}
				var pops []*fakePoP
				var ags []*control.Agent
				for _, n := range []string{"prg", "iad"} {
					f, a := startAgent(t, cfg.Control, path, cfg, n, n, n+"-pw")
					pops, ags = append(pops, f), append(ags, a)
				}
				for i, a := range ags {
					waitFor(t, 5*time.Second, pops[i].name+" healthy", func() bool { return a.State().Healthy })
				}
				ctx := context.Background()
				r, err := ops.Purge(ctx, popapi.PurgeRequest{ID: "tls1", URL: "http://demo.example/obj/1"}, []string{"prg", "iad"}, 2*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				if len(r.Acks) != 2 || len(r.Missing) != 0 {
					t.Errorf("purge acks %+v missing %v, want both PoPs", r.Acks, r.Missing)
				}
				base, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				rev, err := ops.PushConfig(ctx, append(base, "# pushed over TLS\n"...))
				if err != nil {
					t.Fatal(err)
				}
				for i, a := range ags {
					waitFor(t, 10*time.Second, fmt.Sprintf("%s applies revision %d", pops[i].name, rev), func() bool { return a.Config().Revision == rev })
				}
			})

			refused := []struct {
				name string
				tls  config.ControlTLS
				// want is in the error (one of want's |-separated parts).
				// Under TLS 1.3 the server checks the client's certificate
				// after the client's side of the handshake is done: the
				// client then reads the server's alert ("certificate
				// required") or, when its write comes first, a closed
				// connection.
				want string
			}{
				{"a client without the CA", config.ControlTLS{}, "x509: certificate signed by unknown authority"},
				{"a client with another CA", config.ControlTLS{CAFile: pki.otherCA}, "x509: certificate signed by unknown authority"},
			}
			if tt.mutual {
				refused = append(refused, struct {
					name string
					tls  config.ControlTLS
					want string
				}{"a client without a certificate", config.ControlTLS{CAFile: pki.caFile}, "certificate required|closed by remote after TLS handshake"})
			}
			for _, rr := range refused {
				t.Run(rr.name+" is refused", func(t *testing.T) {
					cc := cfg.Control
					cc.TLS = rr.tls
					c, err := dialErr(t, cc, operator, "ops", "ops-pw")
					if err == nil {
						// A missing client certificate is refused after the
						// handshake: the first round trip fails.
						err = c.NATS().Flush()
					}
					if err == nil || !slices.ContainsFunc(strings.Split(rr.want, "|"), func(w string) bool { return strings.Contains(err.Error(), w) }) {
						t.Fatalf("dial = %v, want an error with %q", err, rr.want)
					}
					t.Logf("refused: %v", err)
				})
			}

			t.Run("a plaintext client is refused", func(t *testing.T) {
				addr := strings.TrimPrefix(cfg.Control.Servers[0], "tls://")
				conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(5 * time.Second))
				rd := bufio.NewReader(conn)
				info, err := rd.ReadString('\n')
				if err != nil || !strings.Contains(info, `"tls_required":true`) {
					t.Fatalf("INFO %q (%v), want tls_required", info, err)
				}
				fmt.Fprint(conn, "CONNECT {\"verbose\":false,\"user\":\"ops\",\"pass\":\"ops-pw\"}\r\nPING\r\n")
				line, err := rd.ReadString('\n')
				if err == nil && strings.HasPrefix(line, "PONG") {
					t.Fatalf("the server answered a plaintext client: %q", line)
				}
				t.Logf("plaintext: %q %v", line, err)
				// The nats.go client upgrades a nats:// URL when the server
				// requires TLS, so it meets the certificate check too.
				cc := cfg.Control
				cc.Servers, cc.TLS = []string{"nats://" + addr}, config.ControlTLS{}
				if _, err := dialErr(t, cc, operator, "ops", "ops-pw"); err == nil || !strings.Contains(err.Error(), "x509") {
					t.Errorf("a nats:// client without the CA: %v, want refused by the certificate check", err)
				}
			})
		})
	}
}
