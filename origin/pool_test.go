package origin

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestInterleave(t *testing.T) {
	a, b, c := &url.URL{Host: "a"}, &url.URL{Host: "b"}, &url.URL{Host: "c"}
	tests := []struct {
		name    string
		servers []Server
		want    string
	}{
		{"equal weights", []Server{{a, 1}, {b, 1}}, "ab"},
		{"weight 2 spreads", []Server{{a, 2}, {b, 1}}, "aba"},
		{"zero counts as 1", []Server{{a, 0}, {b, 1}}, "ab"},
		{"three servers", []Server{{a, 3}, {b, 2}, {c, 1}}, "abcaba"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got strings.Builder
			for _, u := range interleave(tt.servers) {
				got.WriteString(u.Host)
			}
			if got.String() != tt.want {
				t.Errorf("rotation %q, want %q", got.String(), tt.want)
			}
		})
	}
}

func TestResolve(t *testing.T) {
	tests := []struct {
		base, target, want string
	}{
		{"http://o:8000", "/a/b?x=1", "http://o:8000/a/b?x=1"},
		{"http://o:8000/", "/a", "http://o:8000/a"},
		{"http://o/prefix", "/a", "http://o/prefix/a"},
		{"http://o/prefix/", "/a%2Fb?q", "http://o/prefix/a%2Fb?q"},
	}
	for _, tt := range tests {
		t.Run(tt.base+tt.target, func(t *testing.T) {
			u, err := resolve(mustURL(t, tt.base), tt.target)
			if err != nil {
				t.Fatal(err)
			}
			if u.String() != tt.want {
				t.Errorf("resolve = %q, want %q", u, tt.want)
			}
		})
	}
}

func TestRemoveHopByHop(t *testing.T) {
	h := http.Header{
		"Connection":        {"X-A, close", "X-B"},
		"X-A":               {"1"},
		"X-B":               {"2"},
		"Keep-Alive":        {"timeout=5"},
		"Transfer-Encoding": {"chunked"},
		"Te":                {"trailers"},
		"Upgrade":           {"h2c"},
		"Cache-Control":     {"max-age=1"},
	}
	RemoveHopByHop(h)
	if len(h) != 1 || h.Get("Cache-Control") != "max-age=1" {
		t.Errorf("left %v; want only Cache-Control (RFC 9110 7.6.1)", h)
	}
}

func TestPoolRoundRobinAndErrors(t *testing.T) {
	mk := func(i int) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/slow":
				select {
				case <-r.Context().Done():
				case <-time.After(5 * time.Second):
				}
			case "/stall":
				w.Header().Set("Content-Length", "10")
				io.WriteString(w, "12345")
				w.(http.Flusher).Flush()
				select {
				case <-r.Context().Done():
				case <-time.After(5 * time.Second):
				}
			default:
				w.Header().Set("X-Server", string(rune('a'+i)))
				io.WriteString(w, r.Header.Get("X-Test"))
			}
		}))
	}
	a, b := mk(0), mk(1)
	defer a.Close()
	defer b.Close()
	pool, err := NewPool([]Server{{mustURL(t, a.URL), 1}, {mustURL(t, b.URL), 1}},
		Timeouts{FirstByte: 300 * time.Millisecond, Idle: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	ctx := context.Background()
	for i := range 4 {
		resp, err := pool.Do(ctx, Request{Method: "GET", Target: "/x", Header: http.Header{"X-Test": {"v"}}})
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "v" {
			t.Errorf("body %q", body)
		}
		if want := string(rune('a' + i%2)); resp.Header.Get("X-Server") != want {
			t.Errorf("request %d went to %s, want %s", i, resp.Header.Get("X-Server"), want)
		}
	}

	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadURL := "http://" + dead.Addr().String()
	dead.Close()
	deadPool, _ := NewPool([]Server{{mustURL(t, deadURL), 1}}, Timeouts{})
	defer deadPool.Close()

	tests := []struct {
		name       string
		pool       *Pool
		target     string
		wantKind   Kind
		wantStatus int
		inBody     bool
	}{
		{"refused connection is unreachable, 502", deadPool, "/", KindUnreachable, 502, false},
		{"slow header is a timeout, 504", pool, "/slow", KindTimeout, 504, false},
		{"stalled body is a timeout, 504", pool, "/stall", KindTimeout, 504, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := tt.pool.Do(ctx, Request{Method: "GET", Target: tt.target, Header: http.Header{}})
			if tt.inBody {
				if err != nil {
					t.Fatal(err)
				}
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			oe, ok := errors.AsType[*Error](err)
			if !ok {
				t.Fatalf("error %v is not an *Error", err)
			}
			if oe.Kind != tt.wantKind || StatusFor(err) != tt.wantStatus {
				t.Errorf("kind %v status %d, want %v %d (%v)", oe.Kind, StatusFor(err), tt.wantKind, tt.wantStatus, err)
			}
		})
	}
}
