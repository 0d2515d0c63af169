package dnsgeo

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestUDPBlockingWorkers serves a socket bound to one address with the
// blocking workers: one SO_REUSEPORT socket each, all answering (clients
// on many ports reach every socket), and after shutdown every socket is
// closed, so the address can be bound again without SO_REUSEPORT.
func TestUDPBlockingWorkers(t *testing.T) {
	s := newTestServer(t, steady)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	u := newUDPServer(s, pc)
	if u == nil {
		t.Fatal("no UDP workers for a socket bound to 127.0.0.1")
	}
	u.workers = 4
	started := make(chan struct{})
	served := make(chan error, 1)
	go func() { served <- u.serve(func() { close(started) }) }()
	<-started
	if u.blocking == nil || len(u.blocking.fds) != u.workers {
		t.Fatalf("blocking sockets %+v, want %d", u.blocking, u.workers)
	}
	for i := range 64 { // 64 client ports: each socket gets some, most likely
		c := &dns.Client{Net: "udp", Timeout: 5 * time.Second}
		r, _, err := c.Exchange(query("demo.cdn.example.", dns.TypeA, "198.51.100.0/24", 0), addr)
		if err != nil {
			t.Fatalf("query %d: %v", i, err)
		}
		if got := answerAddr(r); got != "127.0.0.11" {
			t.Fatalf("query %d: answer %q, want 127.0.0.11", i, got)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := u.shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if err := <-served; err != nil {
		t.Fatalf("serve: %v", err)
	}
	again, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatalf("the address after shutdown: %v (a socket left open?)", err)
	}
	again.Close()
}

// TestUDPBlockingShutdownFirst: after a shutdown that came before serve
// ran, serve neither starts nor takes the socket.
func TestUDPBlockingShutdownFirst(t *testing.T) {
	s := newTestServer(t, steady)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	u := newUDPServer(s, pc)
	u.stop()
	if err := u.serve(func() { t.Error("serve started after a shutdown") }); err != nil {
		t.Fatalf("serve: %v", err)
	}
	if u.blocking != nil {
		t.Error("serve took the socket after a shutdown")
	}
}
