package bench

import (
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// TestParseTrace checks the trace format: each field combination, the
// host rule, pacing and the errors, which name the line.
func TestParseTrace(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		paths   []string
		at      []time.Duration // nil: untimed
		base    string
		wantErr string
	}{
		{"paths", "/a\n/b?x=1\n", []string{"/a", "/b?x=1"}, nil, "", ""},
		{"comments and blanks", "# a trace\n\n/a\n   \n\t/b\n", []string{"/a", "/b"}, nil, "", ""},
		{"absolute URLs", "http://CDN.example/a\nhttp://cdn.example/b#frag\n", []string{"/a", "/b"}, nil, "http://cdn.example", ""},
		{"absolute URL without a path", "https://cdn.example\n", []string{"/"}, nil, "https://cdn.example", ""},
		{"sizes", "/a 1024\n/b?x=1 10k\n/c?size=7 99\n", []string{"/a?size=1024", "/b?x=1&size=10240", "/c?size=7"}, nil, "", ""},
		{"timestamps (Unix seconds)", "1700000000.5 /a\n1700000001 /b\n1700000001.25 /c 64\n",
			[]string{"/a", "/b", "/c?size=64"}, []time.Duration{0, 500 * time.Millisecond, 750 * time.Millisecond}, "", ""},
		{"a timestamp going back is sent with the one before", "10 /a\n12 /b\n11 /c\n",
			[]string{"/a", "/b", "/c"}, []time.Duration{0, 2 * time.Second, 2 * time.Second}, "", ""},
		{"tabs", "0\t/a\t512\n", []string{"/a?size=512"}, []time.Duration{0}, "", ""},
		{"escaping", "/a%20b\n/é\n", []string{"/a%20b", "/%C3%A9"}, nil, "", ""},
		{"empty", "# nothing\n", nil, nil, "", "no requests"},
		{"two hosts", "http://a.example/x\nhttp://b.example/y\n", nil, nil, "", "line 2: http://b.example is not on http://a.example"},
		{"mixed timing", "1 /a\n/b\n", nil, nil, "", "line 2: either every request has a timestamp or none has"},
		{"bad timestamp", "x1 /a\n", nil, nil, "", "line 1: bad timestamp"},
		{"negative timestamp", "-1 /a\n", nil, nil, "", "bad timestamp"},
		{"NaN timestamp", "NaN /a\n", nil, nil, "", "bad timestamp"},
		{"bad size", "/a big\n", nil, nil, "", "line 1: synthetic: bad size"},
		{"too many fields", "1 /a 2 3\n", nil, nil, "", "want [timestamp] URL [size]"},
		{"not a URL", "obj/1\n", nil, nil, "", "want a path"},
		{"other scheme", "ftp://x/y\n", nil, nil, "", "want a path"},
		{"network-path reference", "//host/x\n", nil, nil, "", "want a path"},
		{"user info", "http://u:p@host/x\n", nil, nil, "", "want a path"},
		{"span too long", "0 /a\n400000000 /b\n", nil, nil, "", "line 2: more than"},
		{"line too long", "/" + strings.Repeat("a", maxTraceLine) + "\n", nil, nil, "", "longer than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := ParseTrace(strings.NewReader(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for k := uint64(0); ; k++ {
				p, ok := tr.Next(nil, k, 0)
				if !ok {
					break
				}
				got = append(got, string(p))
			}
			if !slices.Equal(got, tc.paths) {
				t.Errorf("paths %q, want %q", got, tc.paths)
			}
			if tr.Timed() != (tc.at != nil) {
				t.Errorf("timed %v, want %v", tr.Timed(), tc.at != nil)
			}
			for k, want := range tc.at {
				if got := tr.At(uint64(k)); got != want {
					t.Errorf("request %d at %v, want %v", k, got, want)
				}
			}
			if tr.Base() != tc.base {
				t.Errorf("base %q, want %q", tr.Base(), tc.base)
			}
			// The loop cycles.
			if p, _ := tr.Loop().Next(nil, uint64(len(tc.paths)), 0); string(p) != tc.paths[0] {
				t.Errorf("loop: request %d is %q, want %q", len(tc.paths), p, tc.paths[0])
			}
		})
	}
}

// FuzzParseTrace checks that any input either fails with an error naming
// a line or gives a trace whose requests can go on a request line: paths
// that start with / and hold no byte a request line forbids, and times
// that never go back.
func FuzzParseTrace(f *testing.F) {
	f.Add("/a\n/b 10k\n")
	f.Add("1700000000.5 http://cdn.example/a 512\n1700000001 http://cdn.example/b\n")
	f.Fuzz(func(t *testing.T, in string) {
		tr, err := ParseTrace(strings.NewReader(in))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "bench: ") {
				t.Fatalf("error without the package prefix: %v", err)
			}
			return
		}
		if tr.Len() == 0 {
			t.Fatal("a trace without requests parsed")
		}
		var last time.Duration
		for k := range uint64(tr.Len()) {
			p, ok := tr.Next(nil, k, 0)
			if !ok || len(p) == 0 || p[0] != '/' || !utf8.Valid(p) {
				t.Fatalf("request %d: %q", k, p)
			}
			for _, c := range p {
				if c <= ' ' || c >= 0x7f {
					t.Fatalf("request %d: %q has byte %#x", k, p, c)
				}
			}
			at := tr.At(k)
			if at < last || at < 0 || at > maxTraceSpan {
				t.Fatalf("request %d at %v after %v", k, at, last)
			}
			last = at
		}
		if _, ok := tr.Next(nil, uint64(tr.Len()), 0); ok {
			t.Fatal("a request past the end")
		}
	})
}
