package bench

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// TestOpenLoopCountsQueueing checks that latency counts from each
// request's due time, so a server that stalls cannot hide the queue it
// causes (coordinated omission). The server holds its first answer for
// 400 ms; requests are due every 5 ms on one connection. Open loop, the
// ~80 requests due during the stall wait behind it and their latencies
// say so; closed loop, only the stalled request is slow.
func TestOpenLoopCountsQueueing(t *testing.T) {
	const stall = 400 * time.Millisecond
	for _, tc := range []struct {
		name    string
		rate    float64
		minP90  time.Duration
		maxP90  time.Duration
		minSlow int64 // requests slower than stall/4
	}{
		{"open loop", 200, stall / 2, time.Hour, 40},
		{"closed loop", 0, 0, stall / 4, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var n atomic.Int64
			url := serveHTTP(t, listen(t, "127.0.0.1:0"), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if n.Add(1) == 1 {
					time.Sleep(stall) // the server stalls: the condition under test
				}
				w.Header().Set("Cache-Status", "test; hit")
				w.Write([]byte("ok"))
			}))
			res := mustRun(t, Config{URL: url + "/x", Connections: 1, Rate: tc.rate, Requests: 160})
			if res.Requests != 160 || res.Errors != 0 {
				t.Fatalf("%d requests, %d errors", res.Requests, res.Errors)
			}
			p90 := time.Duration(res.Latency.P90 * float64(time.Millisecond))
			if p90 < tc.minP90 || p90 > tc.maxP90 {
				t.Errorf("p90 %v, want between %v and %v", p90, tc.minP90, tc.maxP90)
			}
			if max := time.Duration(res.Latency.Max * float64(time.Millisecond)); max < stall {
				t.Errorf("max %v, want at least the stall %v", max, stall)
			}
			var slow int64
			for _, b := range res.LatencyHistogram {
				if time.Duration(b.LeMs*float64(time.Millisecond)) > stall/4 {
					slow += b.Count
				}
			}
			if slow < tc.minSlow {
				t.Errorf("%d requests slower than %v, want at least %d", slow, stall/4, tc.minSlow)
			}
			if tc.rate > 0 && slow > 100 {
				t.Errorf("%d slow requests: the client did not catch up after the stall", slow)
			}
		})
	}
}

// TestOpenLoopRate checks that an open loop sends at the rate asked, with
// warm-up left out of the results.
func TestOpenLoopRate(t *testing.T) {
	url := serveHTTP(t, listen(t, "127.0.0.1:0"), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok"))
	}))
	res := mustRun(t, Config{URL: url + "/x", Connections: 4, Rate: 400, Warmup: 250 * time.Millisecond, Duration: time.Second})
	// Slots due in [0.25 s, 1.25 s) at 400/s: exactly 400.
	if res.Requests != 400 || res.Mode != "open" {
		t.Errorf("%d requests in %s loop, want 400 in open", res.Requests, res.Mode)
	}
	if res.Seconds < 0.99 || res.Seconds > 1.5 {
		t.Errorf("window %.3fs, want about 1s", res.Seconds)
	}
}
