package config

import (
	"crypto/tls"
	"path/filepath"
	"time"

	"go.yaml.in/yaml/v3"
)

// This file is the TLS part of the file: a PoP's HTTPS (and HTTP/3)
// listener and a service's HTTPS policy.

// POPTLS configures a PoP's HTTPS listener. It is the zero value (Listen
// "") when the PoP has no tls section.
type POPTLS struct {
	// Listen is the host:port of the HTTPS listener: TCP for HTTP/1.1 and
	// HTTP/2, and UDP on the same port for HTTP/3.
	Listen string
	// Certificates are certificate and key files (absolute paths); the
	// PoP picks one per connection by SNI. A changed file is reloaded.
	Certificates []CertFiles
	// SelfSigned makes the PoP create a certificate for its services'
	// hostnames in memory at start (labs only); then Certificates may be
	// empty.
	SelfSigned bool
	// HTTP3 serves HTTP/3 over QUIC on Listen's port; default true.
	HTTP3 bool
	// AltSvcMaxAge is the ma of the Alt-Svc header that advertises
	// HTTP/3 on HTTP/1.1 and HTTP/2 responses; default 24h.
	AltSvcMaxAge time.Duration
	// ZeroRTT accepts 0-RTT (early data) on HTTP/3; default false, since
	// early data can be replayed by an attacker.
	ZeroRTT bool
	// H2C serves HTTP/2 without TLS (prior knowledge) on the plain
	// listener too; default false.
	H2C bool
	// HTTP2 names the server of HTTP/2, over TLS and h2c: HTTP2Outpost
	// (the PoP's own, which answers fresh hits inline) or HTTP2NetHTTP
	// (net/http's); default HTTP2Outpost.
	HTTP2 string
	// FastPath answers fresh hits over HTTP/1.1 on this listener with the
	// PoP's fast path (which then runs the TLS handshakes itself), as on
	// the clear listener; false sends every request through net/http's
	// server. Default true.
	FastPath bool
}

// The servers of HTTP/2 (POPTLS.HTTP2).
const (
	HTTP2Outpost = "outpost"
	HTTP2NetHTTP = "net/http"
)

// Enabled reports whether the PoP has an HTTPS listener.
func (t POPTLS) Enabled() bool { return t.Listen != "" }

// CertFiles names a certificate chain and its key.
type CertFiles struct {
	Cert string
	Key  string
}

// HTTPS is a service's HTTPS policy.
type HTTPS struct {
	// Redirect answers plain-HTTP requests with 308 to https.
	Redirect bool
	// HSTS, when MaxAge > 0, adds Strict-Transport-Security to HTTPS
	// responses.
	HSTS HSTS
}

// HSTS is a Strict-Transport-Security policy (RFC 6797).
type HSTS struct {
	MaxAge            time.Duration
	IncludeSubdomains bool
	Preload           bool
}

const defaultAltSvcMaxAge = 24 * time.Hour

// popTLS decodes a PoP's tls section.
func (d *decoder) popTLS(n *yaml.Node, path string, t *POPTLS) {
	t.HTTP3 = true
	t.AltSvcMaxAge = defaultAltSvcMaxAge
	t.HTTP2 = HTTP2Outpost
	t.FastPath = true
	var listenAt *yaml.Node
	d.fields(n, path, []field{
		required("listen", func(n *yaml.Node, path string) {
			s, ok := d.str(n, path)
			if !ok {
				return
			}
			if _, err := parseHostPort(s); err != nil {
				d.wrapf(n, path, err, "%v", err)
				return
			}
			listenAt, t.Listen = n, s
		}),
		optional("certificates", func(n *yaml.Node, path string) {
			items, ok := d.list(n, path)
			if !ok {
				return
			}
			for i, item := range items {
				p := index(path, i)
				var cf CertFiles
				d.fields(item, p, []field{
					required("cert", d.setString(&cf.Cert)),
					required("key", d.setString(&cf.Key)),
				})
				if cf.Cert == "" || cf.Key == "" {
					continue
				}
				cf.Cert, cf.Key = d.relative(cf.Cert), d.relative(cf.Key)
				if _, err := tls.LoadX509KeyPair(cf.Cert, cf.Key); err != nil {
					d.wrapf(item, p, err, "cannot load the certificate: %v", err)
					continue
				}
				t.Certificates = append(t.Certificates, cf)
			}
		}),
		optional("self_signed", d.setBool(&t.SelfSigned)),
		optional("http3", d.setBool(&t.HTTP3)),
		optional("alt_svc_max_age", d.setDuration(&t.AltSvcMaxAge)),
		optional("zero_rtt", d.setBool(&t.ZeroRTT)),
		optional("h2c", d.setBool(&t.H2C)),
		optional("fast_path", d.setBool(&t.FastPath)),
		optional("http2", func(n *yaml.Node, path string) {
			s, ok := d.str(n, path)
			if !ok {
				return
			}
			switch s {
			case HTTP2Outpost, HTTP2NetHTTP:
				t.HTTP2 = s
			default:
				d.errorf(n, path, "HTTP/2 server %q not supported (want %s or %s)", s, HTTP2Outpost, HTTP2NetHTTP)
			}
		}),
	})
	if listenAt != nil && len(t.Certificates) == 0 && !t.SelfSigned {
		d.errorf(listenAt, join(path, "listen"), "an HTTPS listener needs certificates (or self_signed: true, for labs)")
	}
}

// https decodes a service's https section.
func (d *decoder) https(n *yaml.Node, path string, h *HTTPS) {
	d.fields(n, path, []field{
		optional("redirect", d.setBool(&h.Redirect)),
		optional("hsts", func(n *yaml.Node, path string) {
			d.fields(n, path, []field{
				required("max_age", d.setDuration(&h.HSTS.MaxAge)),
				optional("include_subdomains", d.setBool(&h.HSTS.IncludeSubdomains)),
				optional("preload", d.setBool(&h.HSTS.Preload)),
			})
		}),
	})
}

// relative resolves a path relative to the file being decoded.
func (d *decoder) relative(name string) string {
	if filepath.IsAbs(name) {
		return name
	}
	p := filepath.Join(filepath.Dir(d.file), name)
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return p
}
