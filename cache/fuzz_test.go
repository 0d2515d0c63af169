package cache

import (
	"net/http"
	"testing"
	"time"
)

// FuzzDecide feeds arbitrary date, age and caching fields to the rules:
// they come from origins and must never make a negative lifetime or age,
// or panic. The last argument is sent as both CDN-Cache-Control (a
// Structured Field) and Surrogate-Control, which applies when the first
// does not parse.
func FuzzDecide(f *testing.F) {
	f.Add("Mon, 02 Jan 2006 15:04:05 GMT", "Mon, 02 Jan 2006 16:04:05 GMT", "Sun, 01 Jan 2006 15:04:05 GMT", "30", "max-age=60", "")
	f.Add("garbage", "0", "-1", "-5", "s-maxage=-1, max-age=abc", "max-age=5")
	f.Add("Monday, 02-Jan-06 15:04:05 GMT", "Mon Jan  2 15:04:05 2006", "", "99999999999999999999", "", "")
	f.Add("Thu, 18 Aug 2050 2:01:18 GMT", "Thu, 18  Aug  2050 02:01:18 gMT", "foo", "7200, 0", "max-age =60", `max-age="60", a=(1 2);b=?0, c=:AQ==:, d=1.5`)
	f.Add("", "", "", "0;x=1", "public", "max-age=60+600;outpost, no-store;other, &&&")
	f.Fuzz(func(t *testing.T, date, expires, lastModified, age, cc, cdncc string) {
		h := http.Header{}
		for k, v := range map[string]string{"Date": date, "Expires": expires, "Last-Modified": lastModified, "Age": age, "Cache-Control": cc, "Cdn-Cache-Control": cdncc, "Surrogate-Control": cdncc} {
			if v != "" {
				h.Set(k, v)
			}
		}
		t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		d := Decide(Request{Method: http.MethodGet}, 200, h, Policy{}, t0, t0.Add(time.Second))
		if d.Lifetime < 0 || d.InitialAge < 0 || d.StaleIfError < 0 || d.StaleWhileRevalidate < 0 {
			t.Fatalf("negative duration in %+v", d)
		}
		if d.Storable == (d.Reason != "") {
			t.Fatalf("storable %v with reason %q", d.Storable, d.Reason)
		}
	})
}
