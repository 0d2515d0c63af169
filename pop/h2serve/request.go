package h2serve

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2/hpack"
)

// reqHead is a request's header block, checked (RFC 9113 §8.3) but not
// yet made into an http.Request. Its strings belong to the Framer's
// decoder until copied (hpack gives fresh strings: they may be kept).
type reqHead struct {
	method, scheme, path, authority string
	fields                          []hpack.HeaderField // the regular fields
	contentLength                   int64               // -1 when not declared
}

// errMalformed marks a malformed request (RFC 9113 §8.1.1): a stream
// error of type PROTOCOL_ERROR.
var errMalformed = errors.New("h2serve: malformed request")

// checkRequest checks the fields of a request's header block, which the
// Framer has checked for order, known pseudo-header names, duplicates and
// valid names and values: the pseudo-header fields a request needs (RFC
// 9113 §8.3.1), no connection-specific fields (§8.2.2), TE only
// "trailers", one Content-Length.
func checkRequest(fields []hpack.HeaderField) (reqHead, error) {
	h := reqHead{contentLength: -1}
	var regular int
	for i, f := range fields {
		if !f.IsPseudo() {
			regular = i
			break
		}
		regular = i + 1
		switch f.Name {
		case ":method":
			h.method = f.Value
		case ":scheme":
			h.scheme = f.Value
		case ":path":
			h.path = f.Value
		case ":authority":
			h.authority = f.Value
		default: // :protocol (no extended CONNECT here), :status
			return h, errMalformed
		}
	}
	h.fields = fields[regular:]
	if h.method == "" || !httpguts.ValidHeaderFieldName(h.method) {
		return h, errMalformed
	}
	if h.method == http.MethodConnect {
		if h.scheme != "" || h.path != "" || h.authority == "" {
			return h, errMalformed
		}
	} else {
		switch {
		case h.scheme == "", h.path == "":
			return h, errMalformed
		case h.path[0] == '/':
		case h.path == "*" && h.method == http.MethodOptions:
		default:
			return h, errMalformed
		}
	}
	for _, f := range h.fields {
		if f.IsPseudo() {
			return h, errMalformed
		}
		switch f.Name {
		case "connection", "proxy-connection", "keep-alive", "transfer-encoding", "upgrade":
			return h, errMalformed
		case "te":
			if f.Value != "trailers" {
				return h, errMalformed
			}
		case "content-length":
			n, err := strconv.ParseUint(f.Value, 10, 63)
			if err != nil || (h.contentLength >= 0 && int64(n) != h.contentLength) {
				return h, errMalformed
			}
			h.contentLength = int64(n)
		}
	}
	return h, nil
}

// hitRequest fills r from h when the Cache may answer it: a GET or HEAD
// without a body whose target and authority the HTTP/1.1 fast path would
// take, and without the fields that make net/http's answer differ
// (conditionals, ranges, cache directives, credentials: the fast path's
// list). It reports false for anything else.
func hitRequest(h *reqHead, isTLS bool, r *Request) bool {
	*r = Request{TLS: isTLS}
	switch h.method {
	case http.MethodGet, http.MethodHead:
		r.Method = h.method
	default:
		return false
	}
	if h.contentLength > 0 || (h.scheme != "http" && h.scheme != "https") {
		return false
	}
	r.Target = h.path
	r.Path, r.Query, _ = strings.Cut(h.path, "?")
	for i := 0; i < len(r.Path); i++ {
		if !isPathByte(r.Path[i]) {
			return false
		}
	}
	for i := 0; i < len(r.Query); i++ {
		if c := r.Query[i]; c <= ' ' || c >= 0x7f || c == '#' {
			return false
		}
	}
	r.Authority = h.authority
	hosts, requestIDs := 0, 0
	seenUA, seenReferer := false, false
	for _, f := range h.fields {
		switch f.Name {
		case "cache-control", "pragma", "range", "if-range", "if-match", "if-none-match",
			"if-modified-since", "if-unmodified-since", "authorization", "content-length",
			"expect", "http2-settings", "te", "cdn-loop":
			return false
		case "host":
			hosts++
			if r.Authority == "" {
				r.Authority = f.Value
			}
		case "user-agent":
			if !seenUA {
				seenUA, r.UserAgent = true, strings.Trim(f.Value, " \t")
			}
		case "referer":
			if !seenReferer {
				seenReferer, r.Referer = true, strings.Trim(f.Value, " \t")
			}
		case "x-request-id":
			requestIDs++
			r.RequestID = strings.Trim(f.Value, " \t")
		}
	}
	if requestIDs != 1 {
		r.RequestID = ""
	}
	if r.Authority == "" || hosts > 1 || (hosts == 1 && h.authority != "") {
		return false
	}
	for i := 0; i < len(r.Authority); i++ {
		if !isHostByte(r.Authority[i]) {
			return false
		}
	}
	return true
}

// header makes the request's http.Header as net/http's HTTP/2 server
// does: canonical names, Cookie fields joined with "; " (RFC 9113 §8.2.3).
func (h *reqHead) header() http.Header {
	hdr := make(http.Header, len(h.fields))
	var cookies []string
	for _, f := range h.fields {
		if f.Name == "cookie" {
			cookies = append(cookies, f.Value)
			continue
		}
		k := http.CanonicalHeaderKey(f.Name)
		hdr[k] = append(hdr[k], f.Value)
	}
	if len(cookies) == 1 {
		hdr["Cookie"] = cookies
	} else if len(cookies) > 1 {
		hdr["Cookie"] = []string{strings.Join(cookies, "; ")}
	}
	return hdr
}

func isPathByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '/' || c == '-' || c == '.' || c == '_' || c == '~'
}

func isHostByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '.' || c == '-' || c == ':' || c == '[' || c == ']' || c == '_'
}
