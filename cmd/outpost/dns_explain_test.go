package main

import (
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/outpost-cdn/outpost/config"
	"github.com/outpost-cdn/outpost/dnsgeo"
)

func TestDNSExplainCommand(t *testing.T) {
	const lab = "../../deploy/examples/lab.yaml"
	tests := []struct {
		name       string
		args       []string
		code       int
		firstLine  string // of stdout, when code is 0
		wantOut    string
		wantStderr string
	}{
		{"an address", []string{"dns", "explain", "--config", lab, "198.51.100.7"}, 0, "answer: prg",
			"health: unknown (not probed): every PoP assumed healthy", ""},
		{"a prefix", []string{"dns", "explain", "--config", lab, "192.0.2.0/24"}, 0, "answer: iad", "ecs scope: /24", ""},
		{"JSON", []string{"dns", "explain", "--config", lab, "--json", "203.0.113.0/24"}, 0, "{", `"pop": "nrt"`, ""},
		{"AAAA: the lab's PoPs have no IPv6 address", []string{"dns", "explain", "--config", lab, "--type", "AAAA", "198.51.100.0/24"}, 0,
			"answer: (none: no PoP has an address for AAAA answers)", "", ""},
		{"no client", []string{"dns", "explain", "--config", lab}, 2, "", "", "Usage: outpost dns explain"},
		{"no config", []string{"dns", "explain", "198.51.100.7"}, 2, "", "", "Usage: outpost dns explain"},
		{"garbage", []string{"dns", "explain", "--config", lab, "garbage"}, 1, "", "", `invalid IP address "garbage"`},
		{"host bits", []string{"dns", "explain", "--config", lab, "198.51.100.7/24"}, 1, "", "", "did you mean 198.51.100.0/24?"},
		{"a bad type", []string{"dns", "explain", "--config", lab, "--type", "MX", "198.51.100.7"}, 1, "", "", `invalid type "MX"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout := runOutpost(t, tt.args, tt.code, tt.wantOut, tt.wantStderr)
			if first, _, _ := strings.Cut(stdout, "\n"); first != tt.firstLine {
				t.Errorf("first line %q, want %q", first, tt.firstLine)
			}
		})
	}
}

// TestDNSExplainServer checks --server: the explanation comes from a
// running DNS server's admin listener, printed as from the file.
func TestDNSExplainServer(t *testing.T) {
	cfg, err := config.Load("../../deploy/examples/lab.yaml")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := dnsgeo.New(cfg, dnsgeo.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	admin := httptest.NewServer(srv.AdminHandler())
	defer admin.Close()
	addr := strings.TrimPrefix(admin.URL, "http://")
	stdout := runOutpost(t, []string{"dns", "explain", "--server", addr, "198.51.100.7"}, 0, "", "")
	if first, _, _ := strings.Cut(stdout, "\n"); first != "answer: prg" {
		t.Errorf("first line %q, want %q; output:\n%s", first, "answer: prg", stdout)
	}
	runOutpost(t, []string{"dns", "explain", "--server", addr, "--config", "x.yaml", "198.51.100.7"}, 2, "", "Usage: outpost dns explain")
	runOutpost(t, []string{"dns", "explain", "--server", "127.0.0.1:1", "198.51.100.7"}, 1, "", "asking 127.0.0.1:1")
}
