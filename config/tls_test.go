package config

import (
	"strings"
	"testing"
	"time"
)

// TestTLSAndHTTPS checks the tls and https settings of valid files; the
// errors are in testdata/errors (tls-*, https-*).
func TestTLSAndHTTPS(t *testing.T) {
	base := "services:\n  - name: demo\n    hostnames: [demo.example]\n    origin: {servers: [{url: \"http://127.0.0.1:8000\"}]}\n%s" +
		"pops:\n  - {name: a, location: {lat: 1, lon: 2}, listen: \":80\", admin: \"127.0.0.1:9081\"%s}\n" +
		"  - {name: b, location: {lat: 1, lon: 2}, listen: \":80\", admin: \"127.0.0.2:9081\"}\n"
	build := func(svcExtra, popExtra string) string {
		return strings.Replace(strings.Replace(base, "%s", svcExtra, 1), "%s", popExtra, 1)
	}
	tests := []struct {
		name  string
		text  string
		check func(*Config) bool
	}{
		{"wildcard listen on several PoPs (different hosts)", build("", ""), func(c *Config) bool { return !c.POPs[0].TLS.Enabled() }},
		{"self-signed TLS with defaults", build("", `, tls: {listen: ":443", self_signed: true}`), func(c *Config) bool {
			tl := c.POPs[0].TLS
			return tl.Enabled() && tl.HTTP3 && tl.AltSvcMaxAge == 24*time.Hour && !tl.ZeroRTT && !tl.H2C && tl.HTTP2 == HTTP2Outpost && tl.FastPath
		}},
		{"the TLS fast path turned off", build("", `, tls: {listen: ":443", self_signed: true, fast_path: false}`), func(c *Config) bool {
			return !c.POPs[0].TLS.FastPath
		}},
		{"net/http's HTTP/2 server", build("", `, tls: {listen: ":443", self_signed: true, h2c: true, http2: net/http}`), func(c *Config) bool {
			tl := c.POPs[0].TLS
			return tl.H2C && tl.HTTP2 == HTTP2NetHTTP
		}},
		{"https redirect and HSTS", build("    https: {redirect: true, hsts: {max_age: 8760h, preload: true}}\n", ""), func(c *Config) bool {
			h := c.Services[0].HTTPS
			return h.Redirect && h.HSTS.MaxAge == 8760*time.Hour && h.HSTS.Preload && !h.HSTS.IncludeSubdomains
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("t.yaml", []byte(tt.text))
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(c) {
				t.Errorf("parsed %+v", c)
			}
		})
	}
}
