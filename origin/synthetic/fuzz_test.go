package synthetic

import (
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// The fuzz targets cover everything the origin parses from a request's
// query. Seed corpora are in testdata/fuzz/<Name>/; a crasher found there
// becomes a named row of the matching table test.

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"0", "10k", "1m", "1g", "64KiB", "1KB", "2g", "-1", "1.5k", "99999999999999999999k"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			return
		}
		if n < 0 || n > MaxSize {
			t.Fatalf("ParseSize(%q) = %d, outside 0..MaxSize", s, n)
		}
		// Every accepted size is also accepted as plain bytes, unchanged.
		if m, err := ParseSize(strconv.FormatInt(n, 10)); err != nil || m != n {
			t.Fatalf("ParseSize(%q) = %d, but its decimal form gives %d, %v", s, n, m, err)
		}
	})
}

func FuzzParseDelay(f *testing.F) {
	for _, s := range []string{"200ms", "0", "1.5s", "5m", "5m1ns", "-1s", "1h", "", "1e3ms"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseDelay(s)
		if err == nil && (d < 0 || d > maxDelay) {
			t.Fatalf("parseDelay(%q) = %v, outside 0..%v", s, d, maxDelay)
		}
		p, err := parseSlow(s)
		if err == nil && (p < 0 || p > maxSlowPause) {
			t.Fatalf("parseSlow(%q) = %v, outside 0..%v", s, p, maxSlowPause)
		}
	})
}

func FuzzParseStatus(f *testing.F) {
	for _, s := range []string{"503", "200", "599", "100", "600", "5o3", "+503", "0503", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := parseStatus(s)
		if err != nil {
			return
		}
		if c < 200 || c > 599 || strconv.Itoa(c) != s {
			t.Fatalf("parseStatus(%q) = %d", s, c)
		}
	})
}

// FuzzParseQuery feeds raw query strings, as a client sends them, to the
// parser of every parameter: no panic, and whatever it accepts is safe to
// put in a header.
func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{
		"size=10k&cc=public,%20max-age=60&etag=v1&vary=Accept&tag=a&tag=b%20c",
		"delay=200ms&status=503&reset=1&slow=50ms",
		"cc=&etag=none",
		"etag=W/%22x%22",
		"cc=a%0d%0aX:1",
		"tag=%00",
		"size=1&size=2",
		"%zz=1&size",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, _ := url.ParseQuery(raw)
		p, err := parseParams(q)
		if err != nil {
			return
		}
		for name, v := range map[string]string{"cc": p.cc, "etag": p.etag, "vary": p.vary, "tag": p.tags} {
			if !validFieldValue(v) {
				t.Fatalf("accepted %s %q, which is not a valid field value", name, v)
			}
		}
		if p.etag != "" && !strings.HasSuffix(p.etag, `"`) {
			t.Fatalf("accepted etag %q, which is not quoted", p.etag)
		}
		if p.size > MaxSize || p.size < -1 || (p.status != 0 && (p.status < 200 || p.status > 599)) {
			t.Fatalf("accepted %+v", p)
		}
	})
}
