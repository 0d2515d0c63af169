package fastpath

import (
	"bufio"
	"bytes"
	"net/http"
	"testing"
)

// FuzzParseRequest checks the fast path's request parser against
// net/http's: whatever the fast path accepts, net/http must read as the
// same GET or HEAD of the same host, path and query, with no body, the
// same Connection handling, and the same User-Agent, Referer and
// X-Request-Id as the access log reads them from net/http's header (the
// first value; the request ID only when it is the one value); and
// readHead never panics or misreads.
func FuzzParseRequest(f *testing.F) {
	for _, seed := range []string{
		"GET /obj HTTP/1.1\r\nHost: demo.example\r\n\r\n",
		"HEAD /a/b.c?x=1&y=2 HTTP/1.1\r\nhost: demo.example:80\r\nConnection: close\r\n\r\n",
		"GET /obj HTTP/1.1\r\nHost: demo.example\r\nRange: bytes=0-1\r\n\r\n",
		"GET /o%62j HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /obj HTTP/1.1\r\nHost: a\r\nX-A: a\r\n b\r\n\r\n",
		"GET /obj HTTP/1.1\nHost: a\n\n",
		"GET http://a/obj HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /obj HTTP/1.1\r\nHost: [::1]:8080\r\nConnection: keep-alive, close\r\n\r\n",
		"GET /obj HTTP/1.1\r\nHost: a\r\nUser-Agent: curl/8.5.0\r\nReferer: https://a/b\r\nX-Request-Id: abc-123\r\n\r\n",
		"GET /obj HTTP/1.1\r\nHost: a\r\nuser-agent:\t one \t\r\nUSER-AGENT: two\r\nreferer:\r\nReferer: x\r\n\r\n",
		"GET /obj HTTP/1.1\r\nHost: a\r\nX-Request-Id: one\r\nx-request-id: two\r\n\r\n",
		"GET /obj HTTP/1.1\r\nHost: a\r\nX-Request-Id:\r\nUser-Agent: \xc3\xa9\xff\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		br := bufio.NewReaderSize(bytes.NewReader(data), headMax)
		head, ok := readHead(br, nil)
		if !ok {
			return
		}
		if !bytes.HasSuffix(head, []byte("\r\n\r\n")) || !bytes.HasPrefix(data, head) {
			t.Fatalf("readHead returned %q, not a head at the start of the input", head)
		}
		if lendable(head) {
			// A lent request must be bodiless HTTP/1.1 without an upgrade,
			// or net/http would read past its head.
			if req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head))); err == nil &&
				(req.ContentLength > 0 || len(req.TransferEncoding) > 0 || req.Header.Get("Upgrade") != "" || req.ProtoMinor != 1) {
				t.Fatalf("lendable(%q), but net/http reads a body or an upgrade", head)
			}
		}
		var r Request
		if !parseRequest(head, &r) {
			return
		}
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
		if err != nil {
			t.Fatalf("fast path accepted %q; net/http: %v", head, err)
		}
		switch {
		case req.Method != r.Method:
			t.Fatalf("method %q, net/http %q", r.Method, req.Method)
		case req.Host != string(r.Host):
			t.Fatalf("host %q, net/http %q", r.Host, req.Host)
		case req.URL.EscapedPath() != string(r.Path) || req.URL.RawQuery != string(r.Query):
			t.Fatalf("path %q query %q; net/http %q %q", r.Path, r.Query, req.URL.EscapedPath(), req.URL.RawQuery)
		case req.ContentLength > 0 || len(req.TransferEncoding) > 0:
			t.Fatalf("fast path accepted a request with a body: %q", head)
		case req.Close != r.Close:
			t.Fatalf("close %v, net/http %v for %q", r.Close, req.Close, head)
		case req.ProtoMajor != 1 || req.ProtoMinor != 1:
			t.Fatalf("fast path accepted %s", req.Proto)
		case req.Header.Get("User-Agent") != string(r.UserAgent):
			t.Fatalf("user agent %q, net/http %q in %q", r.UserAgent, req.Header.Get("User-Agent"), head)
		case req.Header.Get("Referer") != string(r.Referer):
			t.Fatalf("referer %q, net/http %q in %q", r.Referer, req.Header.Get("Referer"), head)
		}
		wantID := "" // none, or several: the PoP makes one
		if id := req.Header["X-Request-Id"]; len(id) == 1 {
			wantID = id[0]
		}
		if string(r.RequestID) != wantID {
			t.Fatalf("request ID %q, net/http's one value %q in %q", r.RequestID, wantID, head)
		}
	})
}
