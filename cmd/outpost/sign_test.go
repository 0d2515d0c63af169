package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSign(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "cdn.yaml")
	os.WriteFile(file, []byte(`
services:
  - name: video
    hostnames: [video.example]
    origin: {servers: [{url: "http://127.0.0.1:1"}]}
    signed_urls: {keys: [0123456789abcdef0123]}
  - name: open
    hostnames: [open.example]
    origin: {servers: [{url: "http://127.0.0.1:1"}]}
pops:
  - {name: prg, location: {lat: 1, lon: 2}, listen: "127.0.0.1:0", admin: "127.0.0.2:0"}
`), 0o644)
	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     string
	}{
		{"signs with an expiry", []string{"sign", "--config", file, "--expires", "2027-01-31T00:00:00Z", "https://video.example/v/1.mp4?q=hd"}, 0,
			"https://video.example/v/1.mp4?q=hd&outpost_exp=1801353600&outpost_sig="},
		{"binds to an address", []string{"sign", "--config", file, "--ip", "203.0.113.7", "https://video.example/x"}, 0, "&outpost_ip=203.0.113.7%2F32&"},
		{"a service without signed_urls", []string{"sign", "--config", file, "https://open.example/x"}, 1, ""},
		{"a host no service serves", []string{"sign", "--config", file, "https://other.example/x"}, 1, ""},
		{"a bad prefix", []string{"sign", "--config", file, "--ip", "nope", "https://video.example/x"}, 1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tt.args, &stdout, &stderr); code != tt.wantCode {
				t.Fatalf("exit %d, want %d: %s", code, tt.wantCode, stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.want) {
				t.Errorf("printed %q, want it to contain %q", stdout.String(), tt.want)
			}
		})
	}
}
