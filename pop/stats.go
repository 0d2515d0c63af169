package pop

import (
	"net/http"
	"sync/atomic"

	"github.com/outpost-cdn/outpost/latency"
	"github.com/outpost-cdn/outpost/popapi"
)

// result is what became of one request on a serving listener. Every request
// is exactly one of these (see the README's "figures").
type result int

const (
	resultHit          result = iota // served from storage without waiting on origin
	resultCollapsed                  // waited on another request's fill
	resultRevalidated                // origin answered 304, body from storage
	resultStaleOnError               // origin failed, stored body served
	resultMiss                       // cache-eligible, body from origin
	resultPass                       // not eligible for the cache
	resultError                      // the PoP could not answer
	numResults
)

// resultNames are the names results carry in /stats and /metrics.
var resultNames = [numResults]string{
	resultHit:          "hit",
	resultCollapsed:    "collapsed",
	resultRevalidated:  "revalidated",
	resultStaleOnError: "stale_on_error",
	resultMiss:         "miss",
	resultPass:         "pass",
	resultError:        "error",
}

// fromStorage reports whether the body of a request with this result came
// from storage, for the byte hit ratio.
func (r result) fromStorage() bool {
	switch r {
	case resultHit, resultCollapsed, resultRevalidated, resultStaleOnError:
		return true
	}
	return false
}

// counters are the figures of one service (or of requests that matched no
// service). They are plain atomics, read by /stats and the metrics
// collector; nothing else is kept per request.
type counters struct {
	results [numResults]atomic.Uint64
	// requests counts by method, status class and result, for /metrics.
	requests       [len(methods)][len(statusClasses)][numResults]atomic.Uint64
	bytesServed    atomic.Uint64     // body bytes sent to clients
	bytesFromCache atomic.Uint64     // of those, bytes that came from storage
	originBytes    atomic.Uint64     // body bytes read from origins
	originFetches  atomic.Uint64     // requests sent to origins
	latency        latency.Histogram // time from request to the last body byte written
	originLatency  latency.Histogram // time from sending to an origin to its response header
}

// record counts one finished request of r, answered with status (0 when
// the client left before an answer), and the body bytes it was sent.
func (c *counters) record(r *http.Request, status int, res result, bodyBytes int64) {
	c.recordMethod(r.Method, status, res, bodyBytes)
}

// recordMethod is record for a request known by its method only.
func (c *counters) recordMethod(method string, status int, res result, bodyBytes int64) {
	c.results[res].Add(1)
	c.requests[methodIndex(method)][statusClass(status)][res].Add(1)
	if bodyBytes > 0 {
		c.bytesServed.Add(uint64(bodyBytes))
		if res.fromStorage() {
			c.bytesFromCache.Add(uint64(bodyBytes))
		}
	}
}

// methods are the method label values; anything else counts as "other".
var methods = [...]string{"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "other"}

func methodIndex(m string) int {
	for i, name := range methods[:len(methods)-1] {
		if m == name {
			return i
		}
	}
	return len(methods) - 1
}

// statusClasses are the status_class label values: "none" when the client
// left before an answer.
var statusClasses = [...]string{"none", "1xx", "2xx", "3xx", "4xx", "5xx"}

func statusClass(status int) int {
	if status < 100 || status > 599 {
		return 0
	}
	return status / 100
}

// snapshot reads the counters, in the shape /stats reports them.
func (c *counters) snapshot() popapi.Figures {
	var f popapi.Figures
	f.Latency = percentiles(&c.latency)
	f.OriginLatency = percentiles(&c.originLatency)
	f.Hits = c.results[resultHit].Load()
	f.Collapsed = c.results[resultCollapsed].Load()
	f.Revalidated = c.results[resultRevalidated].Load()
	f.StaleOnError = c.results[resultStaleOnError].Load()
	f.Misses = c.results[resultMiss].Load()
	f.Passes = c.results[resultPass].Load()
	f.Errors = c.results[resultError].Load()
	f.Requests = f.Hits + f.Collapsed + f.Revalidated + f.StaleOnError + f.Misses + f.Passes + f.Errors
	f.OriginFetches = c.originFetches.Load()
	f.BytesServed = c.bytesServed.Load()
	f.BytesFromCache = c.bytesFromCache.Load()
	f.OriginBytes = c.originBytes.Load()
	f.Derive()
	return f
}

// percentiles are a histogram's percentiles as /stats reports them.
func percentiles(h *latency.Histogram) popapi.Percentiles {
	p := h.Percentiles()
	return popapi.Percentiles{P50: p.P50, P90: p.P90, P99: p.P99}
}
