package localca

import (
	"crypto/x509"
	"testing"
)

func TestIssueVerifies(t *testing.T) {
	ca, err := New("test CA")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := ca.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	loaded, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := loaded.Issue([]string{"demo.cdn.example", "*.cdn.example", "127.0.0.11", "::1"})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(leaf.TLS.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		host string
		ok   bool
	}{
		{"demo.cdn.example", true},
		{"other.cdn.example", true},
		{"127.0.0.11", true},
		{"::1", true},
		{"evil.example", false},
		{"a.b.cdn.example", false},
	}
	for _, tt := range tests {
		_, err := cert.Verify(x509.VerifyOptions{DNSName: tt.host, Roots: ca.Pool()})
		if (err == nil) != tt.ok {
			t.Errorf("verify %s: %v, want ok=%v", tt.host, err, tt.ok)
		}
	}
	if _, err := ca.Issue(nil); err == nil {
		t.Error("Issue(nil) succeeded")
	}
	if _, err := Load(t.TempDir()); err == nil {
		t.Error("Load of an empty dir succeeded")
	}
}
