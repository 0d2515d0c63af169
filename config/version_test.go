package config

import (
	"os"
	"path/filepath"
	"testing"
)

// TestContentVersion: a new network map under the same name is a new
// version; a file that names no other file keeps its Version.
func TestContentVersion(t *testing.T) {
	dir := t.TempDir()
	netmap := filepath.Join(dir, "networks.csv")
	write := func(name, data string) {
		t.Helper()
		if err := os.WriteFile(name, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(netmap, "198.51.100.0/24,prg\n")
	base := "services:\n  - {name: demo, hostnames: [demo.cdn.example], origin: {servers: [{url: \"http://127.0.0.1:8000\"}]}}\n" +
		"pops:\n  - {name: prg, location: {lat: 50, lon: 14}, listen: \"127.0.0.1:8080\", admin: \"127.0.0.1:9080\"}\n"
	plain := filepath.Join(dir, "plain.yaml")
	write(plain, base)
	withMap := filepath.Join(dir, "cdn.yaml")
	write(withMap, "zone: cdn.example\n"+base+"dns:\n  listen: [\"127.0.0.1:5353\"]\n  networks: networks.csv\n")

	load := func(name string) (*Config, string) {
		t.Helper()
		c, err := Load(name)
		if err != nil {
			t.Fatal(err)
		}
		v, err := c.ContentVersion()
		if err != nil {
			t.Fatal(err)
		}
		return c, v
	}
	c, v := load(plain)
	if v != c.Version {
		t.Errorf("a file naming no other file: ContentVersion %s, want its Version %s", v, c.Version)
	}
	c1, v1 := load(withMap)
	if got := c1.NamedFiles(); len(got) != 1 || got[0] != netmap {
		t.Errorf("NamedFiles = %q, want [%s]", got, netmap)
	}
	if v1 == c1.Version {
		t.Errorf("ContentVersion %s equals the YAML's Version with a network map", v1)
	}
	write(netmap, "198.51.100.0/24,iad\n")
	c2, v2 := load(withMap)
	if c2.Version != c1.Version {
		t.Fatalf("the YAML changed: %s, %s", c1.Version, c2.Version)
	}
	if v2 == v1 {
		t.Errorf("a changed networks.csv kept the version %s", v1)
	}
	os.Remove(netmap)
	if _, err := c2.ContentVersion(); err == nil {
		t.Error("a missing network map: no error")
	}
}
