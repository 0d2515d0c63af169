package cache

import (
	"net/http"
	"reflect"
	"testing"
	"time"
)

func TestParseCacheControl(t *testing.T) {
	tests := []struct {
		name  string
		lines []string
		want  Directives
	}{
		{"RFC9111 5.2 no field", nil, nil},
		{"RFC9111 5.2 simple", []string{"public, max-age=60"}, Directives{"public": "", "max-age": "60"}},
		{"RFC9111 5.2 names are case-insensitive", []string{"Max-Age=5, NO-STORE"}, Directives{"max-age": "5", "no-store": ""}},
		{"RFC9111 5.2 quoted-string argument", []string{`private="Set-Cookie, X-A", max-age=3`}, Directives{"private": "Set-Cookie, X-A", "max-age": "3"}},
		{"RFC9111 5.2 several field lines", []string{"max-age=1", "s-maxage=2"}, Directives{"max-age": "1", "s-maxage": "2"}},
		{"RFC9111 4.2.1 first duplicate wins", []string{"max-age=10, max-age=20"}, Directives{"max-age": "10"}},
		{"RFC9110 5.6.1 empty members", []string{" , ,max-age=1,,"}, Directives{"max-age": "1"}},
		{"RFC9111 5.2 whitespace around = invalidates the directive", []string{"max-age = 7, public"}, Directives{"public": ""}},
		{"RFC9111 5.2 whitespace before =", []string{"max-age =7"}, Directives{}},
		{"RFC9111 5.2 whitespace after =", []string{"max-age= 7"}, Directives{}},
		{"unterminated quote", []string{`no-cache="a`}, Directives{"no-cache": "a"}},
		{"escaped quote", []string{`ext="a\"b", max-age=2`}, Directives{"ext": `a"b`, "max-age": "2"}},
		{"invalid token skipped", []string{"ma(x=1, public"}, Directives{"public": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for _, l := range tt.lines {
				h.Add("Cache-Control", l)
			}
			got := ParseCacheControl(h)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseCacheControl(%q) = %v, want %v", tt.lines, got, tt.want)
			}
		})
	}
}

func TestSeconds(t *testing.T) {
	tests := []struct {
		name           string
		cc             string
		want           time.Duration
		present, valid bool
	}{
		{"absent", "public", 0, false, false},
		{"RFC9111 1.2.2 integer", "max-age=120", 120 * time.Second, true, true},
		{"RFC9111 1.2.2 zero", "max-age=0", 0, true, true},
		{"RFC9111 1.2.2 negative is invalid", "max-age=-1", 0, true, false},
		{"RFC9111 1.2.2 fraction is invalid", "max-age=1.5", 0, true, false},
		{"RFC9111 1.2.2 missing argument", "max-age", 0, true, false},
		{"RFC9111 1.2.2 overflow capped at 2^31", "max-age=99999999999999999999", (1 << 31) * time.Second, true, true},
		{"quoted integer", `max-age="30"`, 30 * time.Second, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := ParseCacheControl(http.Header{"Cache-Control": {tt.cc}})
			got, present, valid := d.Seconds("max-age")
			if got != tt.want || present != tt.present || valid != tt.valid {
				t.Errorf("Seconds(max-age) of %q = %v, %v, %v; want %v, %v, %v", tt.cc, got, present, valid, tt.want, tt.present, tt.valid)
			}
		})
	}
}

func FuzzParseCacheControl(f *testing.F) {
	for _, s := range []string{"public, max-age=60", `private="a,b"`, `x="\`, "max-age=99999999999999999999999", ",,=,", `a="b"c, d`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		d := ParseCacheControl(http.Header{"Cache-Control": {line}})
		for name := range d {
			if name == "" || !isToken(name) {
				t.Fatalf("directive name %q is not a token", name)
			}
			d.Seconds(name)
		}
		Lifetime(http.Header{"Cache-Control": {line}}, Policy{})
	})
}
