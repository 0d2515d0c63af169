package origin

import (
	"fmt"
	"net/url"
	"strings"
)

// resolve joins the server's URL (with its optional path prefix) and the
// client's request target. The target's dot-segments are removed first
// (RFC 3986 §5.2.4), a percent-encoded dot ("%2e", "%2E") counting as a
// dot, so the result never climbs above the prefix (or above "/"); the
// rest of the path keeps the client's escaping, and the query passes as
// sent.
func resolve(base *url.URL, target string) (*url.URL, error) {
	t, err := url.ParseRequestURI(target)
	if err != nil {
		return nil, fmt.Errorf("bad request target %q: %w", target, err)
	}
	full := joinPath(base.EscapedPath(), removeDotSegments(t.EscapedPath()))
	u := *base
	u.Path, err = url.PathUnescape(full)
	if err != nil {
		return nil, fmt.Errorf("bad request target %q: %w", target, err)
	}
	u.RawPath = ""
	if u.EscapedPath() != full {
		u.RawPath = full // the client's escaping, e.g. %2F in a segment
	}
	u.RawQuery = t.RawQuery
	u.ForceQuery = t.ForceQuery
	return &u, nil
}

// joinPath appends path, which starts with "/", to the escaped prefix.
func joinPath(prefix, path string) string {
	prefix = strings.TrimSuffix(prefix, "/")
	if prefix == "" {
		return path
	}
	return prefix + path
}

// removeDotSegments is RFC 3986 §5.2.4's remove_dot_segments on an
// escaped absolute path, with "%2e" and "%2E" read as "." wherever they
// make up a segment: "/a/%2e%2E/b" is "/b". A "." or ".." at the end
// leaves a trailing "/", as in the RFC; a ".." at the root stays at the
// root. Other segments, empty ones included, are kept as they are. A path
// that does not start with "/" (asterisk-form "*", or the empty path of
// an absolute-form target) gets one.
func removeDotSegments(p string) string {
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	if !mayHaveDots(p) {
		return p
	}
	segs := strings.Split(p[1:], "/")
	out := make([]string, 0, len(segs))
	for i, seg := range segs {
		n := dotSegment(seg)
		if n == 0 {
			out = append(out, seg)
			continue
		}
		if n == 2 && len(out) > 0 {
			out = out[:len(out)-1]
		}
		if i == len(segs)-1 {
			out = append(out, "") // "/a/b/.." is "/a/", not "/a"
		}
	}
	return "/" + strings.Join(out, "/")
}

// mayHaveDots reports whether p has a "." or a "%2e" in any case: without
// one it has no dot-segment.
func mayHaveDots(p string) bool {
	for i := 0; i < len(p); i++ {
		if p[i] == '.' || isEncodedDot(p[i:]) {
			return true
		}
	}
	return false
}

// isEncodedDot reports whether s starts with "%2e" or "%2E".
func isEncodedDot(s string) bool {
	return len(s) >= 3 && s[0] == '%' && s[1] == '2' && (s[2] == 'e' || s[2] == 'E')
}

// dotSegment returns 1 if the escaped segment seg is ".", 2 if it is
// "..", each dot written as "." or "%2e" in any case, and 0 otherwise.
func dotSegment(seg string) int {
	n := 0
	for seg != "" {
		switch {
		case seg[0] == '.':
			seg = seg[1:]
		case isEncodedDot(seg):
			seg = seg[3:]
		default:
			return 0
		}
		if n++; n > 2 {
			return 0
		}
	}
	return n
}
