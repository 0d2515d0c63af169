package origin

import (
	"net/url"
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	tests := []struct {
		name, base, target, want string
	}{
		{"plain", "http://o:8000", "/a/b?x=1", "http://o:8000/a/b?x=1"},
		{"root base", "http://o:8000/", "/a", "http://o:8000/a"},
		{"prefix", "http://o/prefix", "/a", "http://o/prefix/a"},
		{"prefix with slash keeps the client's %2F", "http://o/prefix/", "/a%2Fb?q", "http://o/prefix/a%2Fb?q"},
		{"client's escaping kept", "http://o", "/%7Efoo/a%20b", "http://o/%7Efoo/a%20b"},
		{"empty query kept", "http://o", "/a?", "http://o/a?"},
		{"query untouched", "http://o/p", "/a/../b?x=/../y&z=%2e%2e", "http://o/p/b?x=/../y&z=%2e%2e"},

		// RFC 3986 §5.2.4's own examples.
		{"RFC 3986 5.2.4 /a/b/c/./../../g", "http://o", "/a/b/c/./../../g", "http://o/a/g"},
		{"RFC 3986 5.2.4 mid/content=5/../6", "http://o", "/mid/content=5/../6", "http://o/mid/6"},

		// RFC 3986 §5.4 examples, merged with the base path /b/c/d;p.
		{"RFC 3986 5.4.1 ./g", "http://o", "/b/c/./g", "http://o/b/c/g"},
		{"RFC 3986 5.4.1 g/", "http://o", "/b/c/g/", "http://o/b/c/g/"},
		{"RFC 3986 5.4.1 .", "http://o", "/b/c/.", "http://o/b/c/"},
		{"RFC 3986 5.4.1 ./", "http://o", "/b/c/./", "http://o/b/c/"},
		{"RFC 3986 5.4.1 ..", "http://o", "/b/c/..", "http://o/b/"},
		{"RFC 3986 5.4.1 ../", "http://o", "/b/c/../", "http://o/b/"},
		{"RFC 3986 5.4.1 ../g", "http://o", "/b/c/../g", "http://o/b/g"},
		{"RFC 3986 5.4.1 ../..", "http://o", "/b/c/../..", "http://o/"},
		{"RFC 3986 5.4.1 ../../g", "http://o", "/b/c/../../g", "http://o/g"},
		{"RFC 3986 5.4.2 ../../../g", "http://o", "/b/c/../../../g", "http://o/g"},
		{"RFC 3986 5.4.2 ../../../../g", "http://o", "/b/c/../../../../g", "http://o/g"},
		{"RFC 3986 5.4.2 /./g", "http://o", "/./g", "http://o/g"},
		{"RFC 3986 5.4.2 /../g", "http://o", "/../g", "http://o/g"},
		{"RFC 3986 5.4.2 g.", "http://o", "/b/c/g.", "http://o/b/c/g."},
		{"RFC 3986 5.4.2 .g", "http://o", "/b/c/.g", "http://o/b/c/.g"},
		{"RFC 3986 5.4.2 g..", "http://o", "/b/c/g..", "http://o/b/c/g.."},
		{"RFC 3986 5.4.2 ..g", "http://o", "/b/c/..g", "http://o/b/c/..g"},
		{"RFC 3986 5.4.2 ./../g", "http://o", "/b/c/./../g", "http://o/b/g"},
		{"RFC 3986 5.4.2 ./g/.", "http://o", "/b/c/./g/.", "http://o/b/c/g/"},
		{"RFC 3986 5.4.2 g/./h", "http://o", "/b/c/g/./h", "http://o/b/c/g/h"},
		{"RFC 3986 5.4.2 g/../h", "http://o", "/b/c/g/../h", "http://o/b/c/h"},
		{"RFC 3986 5.4.2 g;x=1/./y", "http://o", "/b/c/g;x=1/./y", "http://o/b/c/g;x=1/y"},
		{"RFC 3986 5.4.2 g;x=1/../y", "http://o", "/b/c/g;x=1/../y", "http://o/b/c/y"},

		// Percent-encoded dots are dots (RFC 3986 §2.3, §6.2.2.2).
		{"RFC 3986 2.3 %2e%2e", "http://o", "/a/%2e%2e/b", "http://o/b"},
		{"RFC 3986 2.3 %2E%2E", "http://o", "/a/%2E%2E/b", "http://o/b"},
		{"RFC 3986 2.3 .%2e", "http://o", "/a/.%2e/b", "http://o/b"},
		{"RFC 3986 2.3 %2E.", "http://o", "/a/%2E./b", "http://o/b"},
		{"RFC 3986 2.3 %2e", "http://o", "/a/%2e/b", "http://o/a/b"},
		{"RFC 3986 2.3 %2e%2e%2e is a name", "http://o", "/a/%2e%2e%2e", "http://o/a/%2e%2e%2e"},
		{"RFC 3986 2.3 %2e in a name is kept", "http://o", "/a%2eb/c", "http://o/a%2eb/c"},

		// Empty segments and trailing dot-segments.
		{"RFC 3986 5.2.4 // kept", "http://o", "//a//b", "http://o//a//b"},
		{"RFC 3986 5.2.4 .. removes an empty segment", "http://o", "/a//../b", "http://o/a/b"},
		{"RFC 3986 5.2.4 //.. at the root", "http://o", "//../a", "http://o/a"},
		{"RFC 3986 5.2.4 trailing /..", "http://o", "/a/b/..", "http://o/a/"},
		{"RFC 3986 5.2.4 trailing /.. at the root", "http://o", "/..", "http://o/"},
		{"RFC 3986 5.2.4 trailing /%2e%2e", "http://o/p", "/a/%2e%2e", "http://o/p/"},

		// Nothing climbs above a server's path prefix.
		{"prefix: /../secret", "http://o/public", "/../secret", "http://o/public/secret"},
		{"prefix: /a/../../secret", "http://o/public/", "/a/../../secret", "http://o/public/secret"},
		{"prefix: encoded", "http://o/public", "/%2e%2e/%2E%2e/secret", "http://o/public/secret"},
		{"prefix: mixed", "http://o/public", "/.%2E/secret?x", "http://o/public/secret?x"},
		{"prefix: trailing /..", "http://o/public", "/..", "http://o/public/"},
		{"prefix: escaped prefix kept", "http://o/a%20b", "/../c", "http://o/a%20b/c"},
		{"absolute-form target", "http://o/p", "http://client/x/../y?q", "http://o/p/y?q"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := resolve(mustURL(t, tt.base), tt.target)
			if err != nil {
				t.Fatal(err)
			}
			if u.String() != tt.want {
				t.Errorf("resolve(%q, %q) = %q, want %q", tt.base, tt.target, u, tt.want)
			}
		})
	}
}

// FuzzResolve checks that no request target climbs above a server's path
// prefix: the path sent always starts with the prefix and has no
// dot-segment, in any encoding, and the query passes unchanged.
func FuzzResolve(f *testing.F) {
	for _, s := range []string{
		"/", "/a/b?x=1", "/../secret", "/a/%2e%2e/%2E./.%2e/b", "//../a", "/a/b/..", "/.", "/a%2F..%2Fb",
		"/%7e/%2e", "*", "http://h/../x?q", "/a?b=../c", "/a/.;/b", "/a/..;/b", "/%2e%2",
	} {
		f.Add(s)
	}
	bases := []*url.URL{mustURL(f, "http://o"), mustURL(f, "http://o/public"), mustURL(f, "http://o/public/")}
	f.Fuzz(func(t *testing.T, target string) {
		t0, perr := url.ParseRequestURI(target)
		for _, base := range bases {
			u, err := resolve(base, target)
			if (err == nil) != (perr == nil) {
				t.Fatalf("resolve(%s, %q): %v, but parsing the target: %v", base, target, err, perr)
			}
			if err != nil {
				continue
			}
			prefix := strings.TrimSuffix(base.EscapedPath(), "/") + "/"
			p := u.EscapedPath()
			if !strings.HasPrefix(p, prefix) || !strings.HasPrefix(u.RequestURI(), prefix) {
				t.Fatalf("resolve(%s, %q) = %q, not under %q", base, target, u, prefix)
			}
			for seg := range strings.SplitSeq(p[len(prefix):], "/") {
				if dotSegment(seg) != 0 {
					t.Fatalf("resolve(%s, %q) = %q, with the dot-segment %q", base, target, u, seg)
				}
			}
			if up, err := url.PathUnescape(p); err != nil || up != u.Path {
				t.Fatalf("resolve(%s, %q): path %q and escaped path %q disagree", base, target, u.Path, p)
			}
			if u.RawQuery != t0.RawQuery {
				t.Fatalf("resolve(%s, %q): query %q, want %q", base, target, u.RawQuery, t0.RawQuery)
			}
		}
	})
}
