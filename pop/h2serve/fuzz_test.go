package h2serve

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// FuzzCheckRequest checks a request's fields as the Framer hands them
// over (one "name: value" per line; names the Framer accepts): the checks
// never panic, a request they accept has the pseudo-header fields RFC 9113
// §8.3.1 asks for and no connection-specific field, and one the Cache may
// answer is a plain GET or HEAD the fast path would take.
func FuzzCheckRequest(f *testing.F) {
	f.Add(":method: GET\n:scheme: https\n:authority: demo.example\n:path: /a?b=c\nuser-agent: x")
	f.Add(":method: GET\n:scheme: http\n:path: /\nhost: demo.example\nhost: other")
	f.Add(":method: CONNECT\n:authority: demo.example:443")
	f.Add(":method: OPTIONS\n:scheme: https\n:path: *\n:authority: a")
	f.Add(":method: POST\n:scheme: https\n:path: /p\n:authority: a\ncontent-length: 10\ncontent-length: 10")
	f.Add(":method: GET\n:scheme: https\n:path: /p\n:authority: a\nte: trailers\nconnection: close")
	f.Add(":method: GET\n:scheme: https\n:path: /p\n:authority: a\nrange: bytes=0-1")
	f.Fuzz(func(t *testing.T, text string) {
		var fields []hpack.HeaderField
		sawRegular := false
		for line := range strings.SplitSeq(text, "\n") {
			name, value, _ := strings.Cut(line, ": ")
			pseudo := strings.HasPrefix(name, ":")
			if (!pseudo && strings.ToLower(name) != name) || !httpguts.ValidHeaderFieldValue(value) || (pseudo && sawRegular) {
				return // the Framer refuses these itself
			}
			sawRegular = sawRegular || !pseudo
			fields = append(fields, hpack.HeaderField{Name: name, Value: value})
		}
		h, err := checkRequest(fields)
		if err != nil {
			return
		}
		if h.method == "" || (h.method != http.MethodConnect && (h.scheme == "" || h.path == "")) {
			t.Fatalf("accepted without pseudo-header fields: %+v", h)
		}
		for _, f := range h.fields {
			switch f.Name {
			case "connection", "transfer-encoding", "upgrade", "keep-alive", "proxy-connection":
				t.Fatalf("accepted %s", f.Name)
			}
		}
		var r Request
		if !hitRequest(&h, true, &r) {
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			t.Fatalf("hit for %s", r.Method)
		}
		if r.Authority == "" || strings.ContainsAny(r.Path, "%?# ") || !strings.HasPrefix(r.Path, "/") {
			t.Fatalf("hit for %+v", r)
		}
		for _, f := range h.fields {
			switch f.Name {
			case "range", "if-none-match", "if-modified-since", "authorization", "cache-control", "pragma":
				t.Fatalf("hit with %s", f.Name)
			}
		}
	})
}

// FuzzServeConn feeds a connection arbitrary frames after the preface: the
// server never panics, and the connection ends when the client's bytes do.
func FuzzServeConn(f *testing.F) {
	var b bytes.Buffer
	fr := http2.NewFramer(&b, nil)
	fr.WriteSettings()
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, kv := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":authority", "a"}, {":path", "/"}} {
		enc.WriteField(hpack.HeaderField{Name: kv[0], Value: kv[1]})
	}
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true})
	fr.WriteData(1, true, []byte("body"))
	fr.WriteWindowUpdate(0, 100)
	fr.WritePing(false, [8]byte{1})
	fr.WriteRSTStream(3, http2.ErrCodeCancel)
	f.Add(b.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		srv := New(echoHandler(), nil, Options{ReadHeaderTimeout: time.Second, IdleTimeout: time.Second, SendTimeout: time.Second})
		client, server := net.Pipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			srv.ServeConn(context.Background(), server)
		}()
		go io.Copy(io.Discard, client)
		client.Write([]byte(http2.ClientPreface))
		client.Write(data)
		client.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("the connection did not end")
		}
	})
}
