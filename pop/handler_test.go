package pop

import (
	"net"
	"strings"
	"testing"
)

// TestHostOnly checks hostOnly against the rule it keeps (the port and
// the brackets of an IPv6 literal removed, a trailing dot removed,
// lowercased), and that a Host without a port costs no allocation.
func TestHostOnly(t *testing.T) {
	tests := []struct{ in, want string }{
		{"demo.example", "demo.example"},
		{"Demo.Example.", "demo.example"},
		{"demo.example:8080", "demo.example"},
		{"DEMO.example.:443", "demo.example"},
		{"127.0.0.1", "127.0.0.1"},
		{"127.0.0.1:18600", "127.0.0.1"},
		{"[::1]", "::1"},
		{"[::1]:443", "::1"},
		{"[bracketed]", "bracketed"},
		{"::1", "::1"},
		{"a:b:c", "a:b:c"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := hostOnly(tt.in); got != tt.want {
			t.Errorf("hostOnly(%q) = %q, want %q", tt.in, got, tt.want)
		}
		// The rule as it was written before the no-colon shortcut.
		want := tt.in
		if h, _, err := net.SplitHostPort(want); err == nil {
			want = h
		} else if strings.HasPrefix(want, "[") && strings.HasSuffix(want, "]") {
			want = want[1 : len(want)-1]
		}
		if want = strings.ToLower(strings.TrimSuffix(want, ".")); hostOnly(tt.in) != want {
			t.Errorf("hostOnly(%q) = %q, SplitHostPort's rule gives %q", tt.in, hostOnly(tt.in), want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { hostOnly("demo.example") }); n != 0 {
		t.Errorf("hostOnly of a Host without a port: %.0f allocations, want 0", n)
	}
}
