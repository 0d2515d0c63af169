package pop

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outpost-cdn/outpost/config"
	"github.com/outpost-cdn/outpost/localca"
)

// certStore holds the PoP's certificates and picks one per handshake by
// SNI. It reloads them from disk when a file changes (polled) or on
// Reload, without dropping connections: a handshake uses whatever set is
// current, established connections keep theirs.
type certStore struct {
	files []config.CertFiles
	log   *slog.Logger

	certs atomic.Pointer[[]tls.Certificate]
	mu    sync.Mutex // one load at a time
	stamp string     // modification times of the files last loaded
	// SelfSignedCA is the in-memory CA when the PoP made its own
	// certificate (labs only), so tests and the lab can trust it.
	selfSignedCA *localca.CA
}

// newCertStore loads the configured certificates, or makes a self-signed
// one for hosts when the configuration asks for that.
func newCertStore(tc *config.POPTLS, hosts []string, log *slog.Logger) (*certStore, error) {
	s := &certStore{files: tc.Certificates, log: log}
	if tc.SelfSigned {
		leaf, ca, err := localca.SelfSigned(hosts)
		if err != nil {
			return nil, err
		}
		s.selfSignedCA = ca
		certs := []tls.Certificate{leaf.TLS}
		s.certs.Store(&certs)
		log.Info("TLS: using a self-signed certificate made in memory (labs only)", "hosts", hosts)
		return s, nil
	}
	if err := s.load(); err != nil {
		return nil, err
	}
	return s, nil
}

// load reads every certificate file; on any error the current set stays.
func (s *certStore) load() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	stamp, err := s.modStamp()
	if err != nil {
		return err
	}
	certs := make([]tls.Certificate, 0, len(s.files))
	for _, f := range s.files {
		c, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			return fmt.Errorf("TLS certificate %s: %w", f.Cert, err)
		}
		certs = append(certs, c)
	}
	s.certs.Store(&certs)
	s.stamp = stamp
	return nil
}

// modStamp summarises the files' modification times and sizes.
func (s *certStore) modStamp() (string, error) {
	var stamp []byte
	for _, f := range s.files {
		for _, name := range []string{f.Cert, f.Key} {
			fi, err := os.Stat(name)
			if err != nil {
				return "", fmt.Errorf("TLS: %w", err)
			}
			stamp = strconv.AppendInt(stamp, fi.ModTime().UnixNano(), 36)
			stamp = strconv.AppendInt(append(stamp, '/'), fi.Size(), 36)
			stamp = append(stamp, ';')
		}
	}
	return string(stamp), nil
}

// watch reloads the certificates when their files change, until ctx ends.
func (s *certStore) watch(ctx context.Context, every time.Duration) {
	if len(s.files) == 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		stamp, err := s.modStamp()
		s.mu.Lock()
		changed := err == nil && stamp != s.stamp
		s.mu.Unlock()
		if !changed {
			continue
		}
		if err := s.load(); err != nil {
			s.log.Error("TLS: certificate files changed but do not load; keeping the current ones", "err", err)
			continue
		}
		s.log.Info("TLS: certificates reloaded")
	}
}

// getCertificate picks the certificate for a handshake: the first that
// supports the client's SNI and algorithms, else the first.
func (s *certStore) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	certs := *s.certs.Load()
	if len(certs) == 0 {
		return nil, errors.New("pop: no TLS certificate")
	}
	for i := range certs {
		if hello.SupportsCertificate(&certs[i]) == nil {
			return &certs[i], nil
		}
	}
	return &certs[0], nil
}

// tlsConfig is the server TLS configuration: TLS 1.2 and 1.3 with Go's
// modern defaults (AEAD suites only, X25519 first), ALPN h2 and
// http/1.1, certificates by SNI.
func (s *certStore) tlsConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: s.getCertificate,
		NextProtos:     []string{"h2", "http/1.1"},
	}
}

// tlsHosts are the names a self-signed certificate covers: every service
// hostname and the TLS listener's IP.
func tlsHosts(cfg *config.Config, tc *config.POPTLS) []string {
	var hosts []string
	for _, s := range cfg.Services {
		hosts = append(hosts, s.Hostnames...)
	}
	if h, _, err := net.SplitHostPort(tc.Listen); err == nil && h != "" {
		hosts = append(hosts, h)
	}
	return hosts
}

// hstsValue formats a Strict-Transport-Security value (RFC 6797 §6.1), or
// "" when HSTS is off.
func hstsValue(h config.HSTS) string {
	if h.MaxAge <= 0 {
		return ""
	}
	v := "max-age=" + strconv.FormatInt(int64(h.MaxAge/time.Second), 10)
	if h.IncludeSubdomains {
		v += "; includeSubDomains"
	}
	if h.Preload {
		v += "; preload"
	}
	return v
}
