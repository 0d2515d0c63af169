package h2serve

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// h2specPath finds h2spec on PATH or in ~/go/bin; "" when absent.
func h2specPath() string {
	if p, err := exec.LookPath("h2spec"); err == nil {
		return p
	}
	if home, err := os.UserHomeDir(); err == nil {
		p := filepath.Join(home, "go", "bin", "h2spec")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// serveTest serves HTTP/2 (h2c) with h on 127.0.0.1:0 until the test ends.
func serveTest(t testing.TB, h http.Handler, c Cache, o Options) (addr string, srv *Server) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv = New(h, c, o)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { srv.ServeConn(context.Background(), nc) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		srv.Close()
		wg.Wait()
	})
	return ln.Addr().String(), srv
}

// echoHandler answers GETs with a small body and echoes POST bodies.
func echoHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			io.Copy(w, r.Body)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, strings.Repeat("hello h2spec\n", 10))
	})
}

// TestH2Spec runs h2spec (github.com/summerwind/h2spec) against the server
// over h2c; it skips when h2spec is not installed:
// go install github.com/summerwind/h2spec/cmd/h2spec@latest
func TestH2Spec(t *testing.T) {
	bin := h2specPath()
	if bin == "" {
		t.Skip("h2spec not installed (go install github.com/summerwind/h2spec/cmd/h2spec@latest)")
	}
	addr, _ := serveTest(t, echoHandler(), nil, Options{IdleTimeout: time.Minute})
	host, port, _ := net.SplitHostPort(addr)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "-h", host, "-p", port, "-o", "2").CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	if err != nil {
		t.Errorf("h2spec failed:\n%s", failures(string(out)))
	}
}

// failures keeps the summary of h2spec's output.
func failures(out string) string {
	if i := strings.Index(out, "Failures:"); i >= 0 {
		return out[i:]
	}
	return out
}
