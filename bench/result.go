package bench

import (
	"cmp"
	"math"
	"slices"
	"strconv"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// Result is what a run measured, over the measured window (warm-up
// excluded). Ratios are over the responses, as the PoP's /stats counts
// them: a request that never reached the CDN (no connection, say) is in
// Requests and Errors but in no ratio.
type Result struct {
	Target   string `json:"target"`            // the URL
	Connect  string `json:"connect,omitempty"` // Config.Connect, if set
	DNS      string `json:"dns,omitempty"`     // Config.DNS, if set
	Workload string `json:"workload"`          // Workload.Name
	// Mode is "closed" (each connection sends when it has its answer) or
	// "open" (requests are due at a fixed rate or a trace's pace).
	Mode        string `json:"mode"`
	Connections int    `json:"connections"` // virtual clients
	// Protocol is the one asked for: Config.Protocol ("http/1.1", "h2",
	// "h3").
	Protocol string    `json:"protocol"`
	Rate     float64   `json:"rate,omitempty"` // offered requests/s, open loop
	Seed     uint64    `json:"seed"`           // Config.Seed
	Started  time.Time `json:"started"`        // when the run (warm-up included) began
	// WarmupSeconds is the warm-up before the window.
	WarmupSeconds float64 `json:"warmup_seconds"`
	// Seconds is the measured window, from its start to the last response.
	Seconds float64 `json:"duration_seconds"`
	// Interrupted is true when the run was cancelled (Ctrl-C) before its
	// end: the figures cover what was done until then.
	Interrupted bool `json:"interrupted,omitempty"`

	// Requests finished in the window, answered or not.
	Requests int64 `json:"requests"`
	// Responses of them got a response, whatever its status.
	Responses int64   `json:"responses"`
	RPS       float64 `json:"rps"` // Requests / Seconds
	// Bytes are body bytes received.
	Bytes       int64   `json:"bytes"`
	BytesPerSec float64 `json:"bytes_per_sec"` // Bytes / Seconds
	// Errors are requests that failed: no response, a 4xx or 5xx status,
	// a cut or (with Verify) wrong body.
	Errors int64 `json:"errors"`
	// ErrorsByKind splits Errors: dns, connect, tls, write, read, timeout,
	// protocol, status_4xx, status_5xx, body_mismatch.
	ErrorsByKind map[string]int64 `json:"errors_by_kind"`
	// StatusCodes counts responses by status code.
	StatusCodes map[string]int64 `json:"status_codes"`
	// Protocols counts responses by the protocol version they came back
	// on ("HTTP/1.1", "HTTP/2.0", "HTTP/3.0"). Responses on another than
	// Protocol's are errors of kind protocol.
	Protocols map[string]int64 `json:"protocols"`

	// HitRatio = (hit + collapsed) / responses.
	HitRatio float64 `json:"hit_ratio"`
	// ByteHitRatio = body bytes of hit, collapsed, revalidated and
	// stale_on_error / body bytes.
	ByteHitRatio float64 `json:"byte_hit_ratio"`
	// Results count the responses by class (Classify).
	Results Results `json:"results"`

	// Latency is from each request's due time (open loop) or sending
	// (closed loop) to its last byte, over responses and timeouts.
	Latency Latency `json:"latency_ms"`
	// LatencyHistogram is the distribution in bins of a tenth of a decade.
	LatencyHistogram []Bin `json:"latency_histogram"`

	// OriginOffload = 1 − origin body bytes / body bytes received, when
	// Config.OriginStats was given and could be read.
	OriginOffload *float64 `json:"origin_offload,omitempty"`
	// Origin is the synthetic origin's counters over the window.
	Origin *Origin `json:"origin,omitempty"`

	// PerPoP groups responses by the cache that answered: the name in
	// Cache-Status ("outpost/fra"), or the address when there is none.
	PerPoP []Group `json:"per_pop"`
	// PerRegion groups requests by the region of the virtual client.
	PerRegion []Group `json:"per_region,omitempty"`
	// DNSFigures count the resolutions (DNS targeting only).
	DNSFigures *DNSFigures `json:"dns_figures,omitempty"`

	// Series is the run second by second (or in wider steps on long runs).
	Series []Point `json:"series"`
}

// Results count responses by class (see Classify).
type Results struct {
	Hit          int64 `json:"hit"`            // served from storage without waiting on origin
	Collapsed    int64 `json:"collapsed"`      // waited on another request's fill
	Revalidated  int64 `json:"revalidated"`    // origin answered 304, body from storage
	StaleOnError int64 `json:"stale_on_error"` // origin failed, stored body served
	Miss         int64 `json:"miss"`           // cache-eligible, body from origin
	Pass         int64 `json:"pass"`           // not eligible for the cache
	Error        int64 `json:"error"`          // the CDN could not answer, or cut the body
	Unknown      int64 `json:"unknown"`        // no Cache-Status, or one not understood
}

// Latency percentiles in milliseconds, from an HDR histogram (three
// significant digits).
type Latency struct {
	Mean float64 `json:"mean"` // arithmetic mean
	P50  float64 `json:"p50"`  // median
	P90  float64 `json:"p90"`  // 90th percentile
	P99  float64 `json:"p99"`  // 99th percentile
	P999 float64 `json:"p999"` // 99.9th percentile
	Max  float64 `json:"max"`  // the slowest
}

// Bin is one bar of the latency histogram.
type Bin struct {
	LeMs  float64 `json:"le_ms"` // the bin's upper edge, in milliseconds
	Count int64   `json:"count"` // requests above the previous edge, up to this one
}

// Origin is the synthetic origin's counters over the window.
type Origin struct {
	Requests  int64 `json:"requests"`   // content requests it answered
	BytesSent int64 `json:"bytes_sent"` // body bytes it sent
}

// Group is the figures of one PoP or one region, defined as Result's.
type Group struct {
	Name         string  `json:"name"`           // the PoP's Cache-Status name or address, or the region's name
	Requests     int64   `json:"requests"`       // finished, answered or not
	Responses    int64   `json:"responses"`      // got a response
	Errors       int64   `json:"errors"`         // failed
	Bytes        int64   `json:"bytes"`          // body bytes received
	HitRatio     float64 `json:"hit_ratio"`      // (hit + collapsed) / responses
	ByteHitRatio float64 `json:"byte_hit_ratio"` // bytes from storage / bytes
	Results      Results `json:"results"`        // responses by class
	Latency      Latency `json:"latency_ms"`     // percentiles
	// Addresses counts responses by the address that sent them.
	Addresses map[string]int64 `json:"addresses,omitempty"`
}

// DNSFigures count a DNS-targeted run's resolutions (warm-up included).
type DNSFigures struct {
	Queries    int64 `json:"queries"`     // questions asked (A, then AAAA if no A)
	Failures   int64 `json:"failures"`    // resolutions without a usable answer
	TCPRetries int64 `json:"tcp_retries"` // answers truncated over UDP and asked again over TCP
	// Answers counts resolutions by the address answered.
	Answers map[string]int64 `json:"answers"`
}

// Point is one step of the time series.
type Point struct {
	// T is the step's start, in seconds since the window began.
	T         float64 `json:"t"`
	Requests  int64   `json:"requests"`      // requests due or sent in the step
	RPS       float64 `json:"rps"`           // Requests per second of the step
	BytesPerS float64 `json:"bytes_per_sec"` // body bytes per second
	Errors    int64   `json:"errors"`        // failed requests
	HitRatio  float64 `json:"hit_ratio"`     // (hit + collapsed) / responses
	P50       float64 `json:"p50_ms"`        // median latency (about 6% precision)
	P99       float64 `json:"p99_ms"`        // 99th percentile latency
}

// ratio divides, or returns 0 when there is nothing to divide by.
func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func results(c [numClasses]int64) Results {
	return Results{
		Hit: c[Hit], Collapsed: c[Collapsed], Revalidated: c[Revalidated], StaleOnError: c[StaleOnError],
		Miss: c[Miss], Pass: c[Pass], Error: c[Error], Unknown: c[Unknown],
	}
}

// hitRatios computes the ratios of the README's figures from counts by
// class.
func hitRatios(classes, classBytes [numClasses]int64) (hit, byteHit float64) {
	var answered, hits, bytes, stored int64
	for c := Class(0); c < numClasses; c++ {
		answered += classes[c]
		bytes += classBytes[c]
		if c.isHit() {
			hits += classes[c]
		}
		if c.fromStorage() {
			stored += classBytes[c]
		}
	}
	return ratio(hits, answered), ratio(stored, bytes)
}

func millis(us int64) float64 { return float64(us) / 1000 }

func latencyOf(h *hdr.Histogram) Latency {
	if h.TotalCount() == 0 {
		return Latency{}
	}
	return Latency{
		Mean: math.Round(h.Mean()) / 1000,
		P50:  millis(h.ValueAtQuantile(50)),
		P90:  millis(h.ValueAtQuantile(90)),
		P99:  millis(h.ValueAtQuantile(99)),
		P999: millis(h.ValueAtQuantile(99.9)),
		Max:  millis(h.Max()),
	}
}

// bins cuts the histogram into about perDecade bins per factor of ten
// between its smallest and largest values, for the report's chart.
func bins(h *hdr.Histogram, perDecade int) []Bin {
	if h.TotalCount() == 0 {
		return nil
	}
	lo, hi := float64(max(h.Min(), 1)), float64(max(h.Max(), 1))
	step := math.Pow(10, 1/float64(perDecade))
	var edges []float64
	for e := math.Pow(10, math.Floor(math.Log10(lo)*float64(perDecade))/float64(perDecade)); ; e *= step {
		edges = append(edges, e)
		if e >= hi {
			break
		}
	}
	out := make([]Bin, len(edges))
	for i, e := range edges {
		out[i].LeMs = math.Round(e) / 1000
	}
	for _, b := range h.Distribution() {
		if b.Count == 0 {
			continue
		}
		v := float64(b.To)
		i, _ := slices.BinarySearch(edges, v)
		i = min(i, len(out)-1)
		out[i].Count += b.Count
	}
	return out
}

func groupOf(name string, g *group) Group {
	hr, bhr := hitRatios(g.classes, g.classBytes)
	out := Group{
		Name: name, Requests: g.requests, Responses: g.answered, Errors: g.errors, Bytes: g.bytes,
		HitRatio: hr, ByteHitRatio: bhr, Results: results(g.classes), Latency: latencyOf(g.hist),
	}
	if len(g.addrs) > 0 {
		out.Addresses = g.addrs
	}
	return out
}

// fill sets the figures of r from the merged recorders, for a window of
// the given length and series steps of interval.
func (r *Result) fill(m *merged, regions []Region, window, interval time.Duration) {
	t := m.total
	r.Seconds = window.Seconds()
	r.Requests, r.Responses, r.Bytes, r.Errors = t.requests, t.answered, t.bytes, t.errors
	if window > 0 {
		r.RPS = float64(t.requests) / window.Seconds()
		r.BytesPerSec = float64(t.bytes) / window.Seconds()
	}
	r.ErrorsByKind = make(map[string]int64)
	for k := errKind(1); k < numErrKinds; k++ {
		if n := m.kinds[k]; n > 0 {
			r.ErrorsByKind[k.String()] = n
		}
	}
	r.StatusCodes = make(map[string]int64)
	for code, n := range m.statuses {
		r.StatusCodes[strconv.Itoa(code)] = n
	}
	r.Protocols = make(map[string]int64)
	for p, n := range m.protos {
		r.Protocols[p] = n
	}
	r.HitRatio, r.ByteHitRatio = hitRatios(t.classes, t.classBytes)
	r.Results = results(t.classes)
	r.Latency = latencyOf(t.hist)
	r.LatencyHistogram = bins(t.hist, 10)

	r.PerPoP = r.PerPoP[:0]
	for name, g := range m.pops {
		r.PerPoP = append(r.PerPoP, groupOf(name, g))
	}
	slices.SortFunc(r.PerPoP, func(a, b Group) int {
		return cmp.Or(cmp.Compare(b.Responses, a.Responses), cmp.Compare(a.Name, b.Name))
	})
	r.PerRegion = nil
	for i, g := range m.regions {
		r.PerRegion = append(r.PerRegion, groupOf(regions[i].Name, g))
	}
	r.Series = r.Series[:0]
	for i, p := range m.series {
		pt := Point{T: (time.Duration(i) * interval).Seconds()}
		if p != nil {
			pt.Requests, pt.Errors = p.requests, p.errors
			step := interval.Seconds()
			if end := time.Duration(i+1) * interval; end > window && window > time.Duration(i)*interval {
				step = (window - time.Duration(i)*interval).Seconds() // the last, partial step
			}
			pt.RPS = float64(p.requests) / step
			pt.BytesPerS = float64(p.bytes) / step
			pt.HitRatio = ratio(p.hits, p.answered)
			if p.hist.TotalCount() > 0 {
				pt.P50 = millis(p.hist.ValueAtQuantile(50))
				pt.P99 = millis(p.hist.ValueAtQuantile(99))
			}
		}
		r.Series = append(r.Series, pt)
	}
}
