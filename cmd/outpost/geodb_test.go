package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/outpost-cdn/outpost/dnsgeo/geodb"
)

func TestGeoDBCommand(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	city := write("city.csv", "cidr,lat,lon,country\n198.51.100.0/24,50.11,8.68,DE\n2001:db8::/32,35.69,139.69,JP\n")
	asn := write("asn.csv", "198.51.100.0/24,AS64500,Example\n")
	bad := write("bad.csv", "198.51.100.7,50,8\n")
	out := filepath.Join(dir, "out.mmdb")
	tests := []struct {
		name       string
		args       []string
		code       int
		wantOut    string
		wantStderr string
		kind       geodb.Kind // of out.mmdb after a success
	}{
		{"no subcommand", []string{"geodb"}, 2, "", "Usage: outpost geodb build", 0},
		{"help", []string{"help", "geodb"}, 0, "Usage: outpost geodb build", "", 0},
		{"one argument", []string{"geodb", "build", city}, 2, "", "Usage: outpost geodb build", 0},
		{"city", []string{"geodb", "build", city, out}, 0, out + ": 2 networks (City database)", "", geodb.City},
		{"asn", []string{"geodb", "build", "--asn", asn, out}, 0, out + ": 1 network (ASN database)", "", geodb.ASN},
		{"a bad row names the file and line", []string{"geodb", "build", bad, out}, 1, "", "bad.csv:1: network \"198.51.100.7\" has no prefix length", 0},
		{"a missing file", []string{"geodb", "build", filepath.Join(dir, "nope.csv"), out}, 1, "", "nope.csv: no such file", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.Remove(out)
			runOutpost(t, tt.args, tt.code, tt.wantOut, tt.wantStderr)
			if tt.code != 0 || tt.wantOut == "" || strings.HasPrefix(tt.wantOut, "Usage") {
				if _, err := os.Stat(out); err == nil {
					t.Errorf("%s was written", out)
				}
				return
			}
			db, err := geodb.Open(out, tt.kind)
			if err != nil {
				t.Fatal(err)
			}
			db.Close()
		})
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".out.mmdb.*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// TestDNSWithGeoDB checks outpost dns --check and dns explain with a
// database built by geodb build, and that a missing database is an error
// naming the file.
func TestDNSWithGeoDB(t *testing.T) {
	dir := t.TempDir()
	copyFile := func(from, to string) {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, to), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	copyFile("../../deploy/examples/lab.yaml", "lab.yaml")
	copyFile("../../deploy/examples/networks.csv", "networks.csv")
	if err := os.WriteFile(filepath.Join(dir, "cities.csv"), []byte("1.0.0.0/16,35.69,139.69,JP\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"geodb", "build", filepath.Join(dir, "cities.csv"), filepath.Join(dir, "cities.mmdb")}, &stdout, &stderr); code != 0 {
		t.Fatalf("geodb build: exit %d: %s", code, stderr.String())
	}
	withKey := func(name, key string) string {
		b, _ := os.ReadFile(filepath.Join(dir, "lab.yaml"))
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, append(b, []byte("  geoip: "+key+"\n")...), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good, missing := withKey("good.yaml", "cities.mmdb"), withKey("missing.yaml", "nope.mmdb")
	tests := []struct {
		name       string
		args       []string
		code       int
		wantOut    string
		wantStderr string
	}{
		{"--check", []string{"dns", "--config", good, "--check"}, 0, good + ": ok", ""},
		{"explain", []string{"dns", "explain", "--config", good, "1.0.3.0/24"}, 0, "answer: nrt\n", ""},
		{"--check with a missing database", []string{"dns", "--config", missing, "--check"}, 1, "", filepath.Join(dir, "nope.mmdb") + ": not a readable MaxMind DB file"},
		{"explain with a missing database", []string{"dns", "explain", "--config", missing, "1.0.3.0/24"}, 1, "", "nope.mmdb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if stdout := runOutpost(t, tt.args, tt.code, "", tt.wantStderr); !strings.HasPrefix(stdout, tt.wantOut) {
				t.Errorf("stdout %q does not start with %q", stdout, tt.wantOut)
			}
		})
	}
}
