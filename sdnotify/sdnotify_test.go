package sdnotify

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// listen makes a notify socket as systemd does and returns its path and
// the datagrams it receives.
func listen(t *testing.T) (string, <-chan string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Skipf("no unixgram sockets here: %v", err)
	}
	got := make(chan string, 16)
	go func() {
		defer close(got)
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			got <- string(buf[:n])
		}
	}()
	t.Cleanup(func() { conn.Close() })
	return path, got
}

func receive(t *testing.T, got <-chan string) string {
	t.Helper()
	select {
	case s := <-got:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("no datagram")
	}
	return ""
}

func TestNotify(t *testing.T) {
	path, got := listen(t)
	t.Setenv("NOTIFY_SOCKET", path)
	for _, state := range []string{Ready, Stopping, ReloadingNow()} {
		sent, err := Notify(state)
		if !sent || err != nil {
			t.Fatalf("Notify(%q) = %v, %v", state, sent, err)
		}
		if s := receive(t, got); s != state {
			t.Errorf("received %q, want %q", s, state)
		}
	}
	if s := ReloadingNow(); !strings.HasPrefix(s, "RELOADING=1\nMONOTONIC_USEC=") {
		t.Errorf("ReloadingNow() = %q", s)
	}

	t.Setenv("NOTIFY_SOCKET", "")
	if sent, err := Notify(Ready); sent || err != nil {
		t.Errorf("without NOTIFY_SOCKET: %v, %v; want nothing sent, no error", sent, err)
	}
	t.Setenv("NOTIFY_SOCKET", "relative/path")
	if _, err := Notify(Ready); err == nil {
		t.Error("a relative NOTIFY_SOCKET: no error")
	}
}

func TestWatchdogInterval(t *testing.T) {
	tests := []struct {
		name, usec, pid string
		want            time.Duration
	}{
		{"half of WatchdogSec", "30000000", "", 15 * time.Second},
		{"for this process", "30000000", "42", 15 * time.Second},
		{"for another process", "30000000", "43", 0},
		{"no watchdog", "", "", 0},
		{"garbage", "x", "", 0},
		{"zero", "0", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := watchdogInterval(tt.usec, tt.pid, 42); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

// TestRunWatchdog: keep-alives while alive, none while not.
func TestRunWatchdog(t *testing.T) {
	path, got := listen(t)
	t.Setenv("NOTIFY_SOCKET", path)
	t.Setenv("WATCHDOG_USEC", "20000") // every 10ms
	t.Setenv("WATCHDOG_PID", "")
	ctx, cancel := context.WithCancel(context.Background())
	alive := make(chan bool, 1)
	alive <- true
	done := make(chan struct{})
	go func() {
		defer close(done)
		RunWatchdog(ctx, func(context.Context) bool {
			select {
			case a := <-alive:
				return a
			default:
				return false
			}
		})
	}()
	if s := receive(t, got); s != Watchdog {
		t.Errorf("received %q, want %q", s, Watchdog)
	}
	cancel()
	<-done
	select {
	case s := <-got:
		t.Errorf("a keep-alive while not alive: %q", s)
	default:
	}
}
