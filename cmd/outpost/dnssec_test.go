package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDNSSECKeygen makes a KSK and a ZSK, then reads the KSK back for
// its DS record: the line keygen printed.
func TestDNSSECKeygen(t *testing.T) {
	dir := t.TempDir()
	var out, errb bytes.Buffer
	if code := run([]string{"dnssec", "keygen", "--zone", "cdn.example", "--type", "ksk-zsk", "--algorithm", "ed25519", "--dir", dir}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	files, _ := filepath.Glob(filepath.Join(dir, "Kcdn.example.+015+*"))
	if len(files) != 4 {
		t.Fatalf("files %v, want a .key and a .private per key", files)
	}
	lines := strings.Split(out.String(), "\n")
	if !strings.HasPrefix(lines[0], "KSK ") || !strings.Contains(lines[1], "DS for the parent zone: cdn.example.") || !strings.HasPrefix(lines[2], "ZSK ") {
		t.Fatalf("output:\n%s", out.String())
	}
	ksk := strings.Fields(lines[0])[1]
	if fi, err := os.Stat(strings.TrimSuffix(ksk, ".key") + ".private"); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("private key file: %v %v", fi, err)
	}
	var ds bytes.Buffer
	if code := run([]string{"dnssec", "ds", ksk}, &ds, &errb); code != 0 {
		t.Fatalf("ds: exit %d: %s", code, errb.String())
	}
	if want := strings.TrimPrefix(lines[1], "  DS for the parent zone: "); strings.TrimSpace(ds.String()) != want {
		t.Errorf("ds %q, want %q", ds.String(), want)
	}
	if code := run([]string{"dnssec", "keygen", "--zone", "cdn.example", "--algorithm", "rsasha1"}, &out, &errb); code != 2 {
		t.Errorf("an unsupported algorithm: exit %d, want 2", code)
	}
}
