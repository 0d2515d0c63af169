package dnsgeo

import (
	"context"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestUDPWildcard serves on 0.0.0.0 and asks on two loopback addresses:
// each reply must come from the address its query went to, or the
// client's connected socket would not take it.
func TestUDPWildcard(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("wildcard UDP workers run on Linux only; elsewhere the dns package serves")
	}
	s := newTestServer(t, steady)
	ctx, cancel := context.WithCancel(context.Background())
	ls, err := Listen(ctx, []string{"0.0.0.0:0"}, "")
	if err != nil {
		cancel()
		t.Skipf("cannot listen on 0.0.0.0: %v", err)
	}
	if newUDPServer(s, ls.UDP[0]) == nil {
		t.Fatal("no UDP workers for a wildcard socket")
	}
	serveUntilEnd(ctx, t, cancel, s, ls)
	_, port, _ := net.SplitHostPort(ls.UDP[0].LocalAddr().String())
	for _, host := range []string{"127.0.0.1", "127.0.0.2"} {
		c := &dns.Client{Net: "udp", Timeout: 5 * time.Second}
		r, _, err := c.Exchange(query("demo.cdn.example.", dns.TypeA, "198.51.100.0/24", 0), net.JoinHostPort(host, port))
		if err != nil {
			t.Fatalf("query to %s: %v", host, err)
		}
		if got := answerAddr(r); got != "127.0.0.11" {
			t.Errorf("query to %s: answer %q, want 127.0.0.11", host, got)
		}
	}
}

// TestUDPIPv6 serves on ::1, where the workers read and write in batches
// through the IPv6 socket API.
func TestUDPIPv6(t *testing.T) {
	s := newTestServer(t, steady)
	ctx, cancel := context.WithCancel(context.Background())
	ls, err := Listen(ctx, []string{"[::1]:0"}, "")
	if err != nil {
		cancel()
		t.Skipf("no IPv6 loopback: %v", err)
	}
	serveUntilEnd(ctx, t, cancel, s, ls)
	c := &dns.Client{Net: "udp", Timeout: 5 * time.Second}
	for range 3 {
		r, _, err := c.Exchange(query("demo.cdn.example.", dns.TypeAAAA, "2001:db8:1::/48", 0), ls.UDP[0].LocalAddr().String())
		if err != nil {
			t.Fatalf("query over IPv6: %v", err)
		}
		if got := answerAddr(r); got != "2001:db8::13" {
			t.Errorf("answer %q, want 2001:db8::13 (nrt, the only PoP with IPv6)", got)
		}
	}
}
