package config

import (
	"path/filepath"
	"testing"
)

// TestDisk checks a valid disk list: defaults, sizes, and a relative path
// taken relative to the file's directory.
func TestDisk(t *testing.T) {
	const file = `services:
  - {name: demo, hostnames: [a.example], origin: {servers: [{url: "http://o"}]}}
pops:
  - name: prg
    location: {lat: 1, lon: 2}
    listen: ":8081"
    admin: ":9081"
    disk:
      - {path: /var/cache/outpost, size: 2TiB}
      - {path: cache/b, size: 64MiB, min_uses: 1, write_rate: 100MiB, fsync: true}
  - {name: ams, location: {lat: 1, lon: 2}, listen: ":8082", admin: ":9082"}
`
	c, err := Parse("/etc/outpost/cdn.yaml", []byte(file))
	if err != nil {
		t.Fatal(err)
	}
	want := []Disk{
		{Path: "/var/cache/outpost", Size: 2 << 40, MinUses: 2},
		{Path: filepath.FromSlash("/etc/outpost/cache/b"), Size: 64 << 20, MinUses: 1, WriteRate: 100 << 20, Fsync: true},
	}
	got := c.POPs[0].Disk
	if len(got) != len(want) {
		t.Fatalf("disks %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("disk[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
	if len(c.POPs[1].Disk) != 0 {
		t.Errorf("a PoP without disk has %+v", c.POPs[1].Disk)
	}
}
