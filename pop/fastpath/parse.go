package fastpath

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/textproto"
	"slices"
	"strings"
)

// readHead returns the buffered request head (through its blank line),
// reading more as needed; ok is false when the head is not complete
// within headMax bytes, uses bare LF line ends, or the connection failed
// with part of a head read — net/http then answers it. It is also false
// as soon as the lines read so far are ones net/http would already have
// rejected (see rejectedSoFar), so that net/http answers them as early as
// it would alone. more, if not nil, is called once before the first read
// beyond what br had buffered (the caller sets the head's deadline).
func readHead(br *bufio.Reader, more func()) (head []byte, ok bool) {
	checked := 0 // bytes of complete lines checked
	for {
		buf, _ := br.Peek(br.Buffered())
		if i := bytes.Index(buf, []byte("\r\n\r\n")); i >= 0 {
			head = buf[:i+4]
			if bytes.Count(head, []byte("\n")) != bytes.Count(head, []byte("\r\n")) {
				return nil, false // a bare LF: leave the leniency to net/http
			}
			return head, true
		}
		if len(buf) >= headMax || bytes.Contains(buf, []byte("\n\n")) {
			return nil, false
		}
		for {
			j := bytes.IndexByte(buf[checked:], '\n')
			if j < 0 {
				break
			}
			end := checked + j + 1
			if !bytes.HasSuffix(buf[:end], []byte("\r\n")) || rejectedSoFar(buf, checked, end) {
				return nil, false
			}
			checked = end
		}
		if more != nil {
			more()
			more = nil
		}
		if _, err := br.Peek(len(buf) + 1); err != nil {
			return nil, false
		}
	}
}

// rejectedSoFar reports whether net/http, having read the complete line
// buf[start:end] of an incomplete head, would already answer with an error
// (a malformed request line or field line). It asks net/http's own parser,
// given the request line and that one line: it runs only while a head
// arrives in pieces. A continuation line is left for net/http to judge
// with the whole head.
func rejectedSoFar(buf []byte, start, end int) bool {
	var probe []byte
	if start == 0 {
		probe = buf[:end]
	} else {
		if start > bytes.IndexByte(buf, '\n')+1 && (buf[start] == ' ' || buf[start] == '\t') {
			return false
		}
		first := buf[:bytes.IndexByte(buf, '\n')+1]
		probe = append(slices.Clip(first), buf[start:end]...)
	}
	_, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(probe)))
	return err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF)
}

// parseRequest parses a request head the fast path may answer into r; it
// returns false for anything else.
func parseRequest(head []byte, r *Request) bool {
	*r = Request{}
	line, rest, _ := bytes.Cut(head, []byte("\r\n"))
	switch {
	case bytes.HasPrefix(line, []byte("GET ")):
		line, r.Method = line[4:], http.MethodGet
	case bytes.HasPrefix(line, []byte("HEAD ")):
		line, r.Method = line[5:], http.MethodHead
	default:
		return false
	}
	target, version, found := bytes.Cut(line, []byte(" "))
	if !found || string(version) != "HTTP/1.1" || len(target) == 0 || target[0] != '/' {
		return false
	}
	r.Target = target
	r.Path, r.Query, _ = bytes.Cut(target, []byte("?"))
	for _, c := range r.Path {
		if !isPathByte(c) {
			return false
		}
	}
	for _, c := range r.Query {
		if c <= ' ' || c >= 0x7f || c == '#' {
			return false
		}
	}
	hosts, requestIDs := 0, 0
	seenUA, seenReferer := false, false
	for len(rest) > 2 { // the last line is the blank one
		line, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		name, value, found := bytes.Cut(line, []byte(":"))
		if !found || len(name) == 0 {
			return false
		}
		for _, c := range name {
			if !isTokenByte(c) {
				return false // includes obs-fold and whitespace before ':'
			}
		}
		value = bytes.Trim(value, " \t")
		for _, c := range value {
			if (c < ' ' && c != '\t') || c == 0x7f {
				return false
			}
		}
		switch headerRole(name) {
		case roleHandOff:
			return false
		case roleHost:
			hosts++
			r.Host = value
		case roleUserAgent: // net/http's Header.Get gives the first, even if empty
			if !seenUA {
				seenUA, r.UserAgent = true, value
			}
		case roleReferer:
			if !seenReferer {
				seenReferer, r.Referer = true, value
			}
		case roleRequestID:
			requestIDs++
			r.RequestID = value
		case roleConnection:
			for tok := range bytes.SplitSeq(value, []byte(",")) {
				tok = bytes.TrimSpace(tok)
				switch {
				case bytes.EqualFold(tok, []byte("close")):
					r.Close = true
				case bytes.EqualFold(tok, []byte("keep-alive")), len(tok) == 0:
				default:
					return false // hop-by-hop fields named: net/http's job
				}
			}
		}
	}
	if hosts != 1 || len(r.Host) == 0 {
		return false
	}
	if requestIDs != 1 {
		r.RequestID = nil // net/http's header would hold several values, or none
	}
	for _, c := range r.Host {
		if !isHostByte(c) {
			return false
		}
	}
	return true
}

// Roles of request header fields on the fast path.
const (
	roleIgnore     = iota // no bearing on a stored 200 without Vary
	roleHost              // Host
	roleConnection        // Connection
	roleUserAgent         // User-Agent: logged, no bearing on the answer
	roleReferer           // Referer: logged, no bearing on the answer
	roleRequestID         // X-Request-Id: logged, no bearing on the answer
	roleHandOff           // changes what is answered: net/http's path
)

// headerRole classifies a request header field name.
func headerRole(name []byte) int {
	for _, f := range handOffFields {
		if len(f) == len(name) && bytes.EqualFold(name, []byte(f)) {
			return roleHandOff
		}
	}
	switch len(name) { // one comparison per field, by length
	case len("Host"):
		if bytes.EqualFold(name, []byte("Host")) {
			return roleHost
		}
	case len("Connection"): // and User-Agent
		switch {
		case bytes.EqualFold(name, []byte("Connection")):
			return roleConnection
		case bytes.EqualFold(name, []byte("User-Agent")):
			return roleUserAgent
		}
	case len("Referer"):
		if bytes.EqualFold(name, []byte("Referer")) {
			return roleReferer
		}
	case len("X-Request-Id"):
		if bytes.EqualFold(name, []byte("X-Request-Id")) {
			return roleRequestID
		}
	}
	return roleIgnore
}

// handOffFields are the request fields whose presence sends a request to
// net/http: they carry a body, preconditions, ranges, cache directives,
// credentials or protocol changes.
var handOffFields = [...]string{
	"Cache-Control", "Pragma", "Range", "If-Range", "If-Match", "If-None-Match",
	"If-Modified-Since", "If-Unmodified-Since", "Authorization", "Upgrade",
	"Content-Length", "Transfer-Encoding", "Expect", "Http2-Settings", "TE",
}

func isPathByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '/' || c == '-' || c == '.' || c == '_' || c == '~'
}

func isTokenByte(c byte) bool {
	if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

func isHostByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '.' || c == '-' || c == ':' || c == '[' || c == ']' || c == '_'
}

// AppendField appends one header field line as http.Header.Write writes
// it: CR and LF in the value become spaces, and surrounding white space
// goes.
func AppendField(out []byte, name, value string) []byte {
	if value != "" && (isFieldSpace(value[0]) || isFieldSpace(value[len(value)-1]) || strings.ContainsAny(value, "\r\n")) {
		value = textproto.TrimString(strings.NewReplacer("\n", " ", "\r", " ").Replace(value))
	}
	out = append(out, name...)
	out = append(out, ": "...)
	out = append(out, value...)
	return append(out, "\r\n"...)
}

func isFieldSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// ValidFieldName reports whether name is a token, as net/http requires of
// the header fields it writes (it drops the others).
func ValidFieldName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !isTokenByte(name[i]) {
			return false
		}
	}
	return true
}
