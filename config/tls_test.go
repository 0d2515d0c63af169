package config

import (
	"strings"
	"testing"
	"time"
)

func TestTLSAndHTTPS(t *testing.T) {
	base := "services:\n  - name: demo\n    hostnames: [demo.example]\n    origin: {servers: [{url: \"http://127.0.0.1:8000\"}]}\n%s" +
		"pops:\n  - {name: a, location: {lat: 1, lon: 2}, listen: \":80\", admin: \"127.0.0.1:9081\"%s}\n" +
		"  - {name: b, location: {lat: 1, lon: 2}, listen: \":80\", admin: \"127.0.0.2:9081\"}\n"
	build := func(svcExtra, popExtra string) string {
		return strings.Replace(strings.Replace(base, "%s", svcExtra, 1), "%s", popExtra, 1)
	}
	tests := []struct {
		name    string
		text    string
		wantErr string
		check   func(*Config) bool
	}{
		{"wildcard listen on several PoPs (different hosts)", build("", ""), "", func(c *Config) bool { return !c.POPs[0].TLS.Enabled() }},
		{"self-signed TLS with defaults", build("", `, tls: {listen: ":443", self_signed: true}`), "", func(c *Config) bool {
			tl := c.POPs[0].TLS
			return tl.Enabled() && tl.HTTP3 && tl.AltSvcMaxAge == 24*time.Hour && !tl.ZeroRTT && !tl.H2C
		}},
		{"TLS without certificates", build("", `, tls: {listen: ":443"}`), "pops[0].tls.listen: an HTTPS listener needs certificates", nil},
		{"certificate that does not load", build("", `, tls: {listen: ":443", certificates: [{cert: testdata/ca.pem, key: testdata/ca.pem}]}`), "pops[0].tls.certificates[0]: cannot load the certificate", nil},
		{"unknown tls key", build("", `, tls: {listen: ":443", self_signed: true, http2: true}`), `unknown key "http2"`, nil},
		{"https redirect and HSTS", build("    https: {redirect: true, hsts: {max_age: 8760h, preload: true}}\n", ""), "", func(c *Config) bool {
			h := c.Services[0].HTTPS
			return h.Redirect && h.HSTS.MaxAge == 8760*time.Hour && h.HSTS.Preload && !h.HSTS.IncludeSubdomains
		}},
		{"hsts without max_age", build("    https: {hsts: {preload: true}}\n", ""), "services[0].https.hsts.max_age", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("t.yaml", []byte(tt.text))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(c) {
				t.Errorf("parsed %+v", c)
			}
		})
	}
}
