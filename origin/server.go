package origin

import (
	"math"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outpost-cdn/outpost/latency"
)

// State is an origin server's health as its pool sees it.
type State string

// The states of an origin server.
const (
	// StateHealthy servers are in rotation.
	StateHealthy State = "healthy"
	// StateEjected servers failed Ejection.Failures requests in a row (or
	// their trial request after a cool-down) and get no requests until a
	// trial request after the cool-down succeeds.
	StateEjected State = "ejected"
	// StateUnhealthy servers failed HealthCheck.Fall active checks in a row
	// and get no requests until they pass HealthCheck.Rise in a row.
	StateUnhealthy State = "unhealthy"
)

// ejectState is where a server is in passive ejection.
type ejectState uint8

const (
	inRotation  ejectState = iota // not ejected
	coolingDown                   // ejected; waiting for its cool-down to end
	probing                       // cool-down over; the next pick of it is the trial
	onTrial                       // the trial request is in flight
)

// ewmaAlpha is the weight of each new sample in the latency average that
// the stats report.
const ewmaAlpha = 0.1

// peakDecay is the time constant of the peak-EWMA response-time estimate
// behind the request_based policy: an estimate halves in about 7s without
// new samples, so a server once slow is tried again.
const peakDecay = 10 * time.Second

// server is one origin server of a pool with its figures and health. The
// counters are atomics so the request path takes no lock; state changes,
// which are rare, happen under mu.
type server struct {
	url    *url.URL
	name   string // label for metrics and logs
	weight int
	seed   uint64 // rendezvous hash seed, from the URL
	client *http.Client

	healthURL *url.URL // Server.HealthURL: what active checks probe; nil means url with the check's path

	up      atomic.Bool // picks may choose it
	probing atomic.Bool // eject == probing: the pick that lands here claims the trial
	epoch   atomic.Uint64

	inFlight    atomic.Int64
	requests    atomic.Uint64
	failures    atomic.Uint64
	consecutive atomic.Int64      // failures since the last success
	response    latency.Histogram // times to response header
	ewmaBits    atomic.Uint64     // float64 seconds
	peakBits    atomic.Uint64     // float64 nanoseconds
	peakAt      atomic.Int64      // unix nanoseconds of the last peak update
	loadBits    atomic.Uint64     // float64; NaN when unknown
	loadErrors  atomic.Uint64

	latMu sync.Mutex // serializes the EWMA updates

	mu       sync.Mutex
	eject    ejectState
	until    time.Time // end of the cool-down
	down     bool      // failing active health checks
	checkRun int       // consecutive check results: > 0 passes, < 0 failures
	lastErr  string
	lastFail time.Time
}

func newServer(s Server, client *http.Client) *server {
	srv := &server{
		url:    s.URL,
		name:   s.URL.Host,
		weight: max(s.Weight, 1),
		seed:   hashString(s.URL.String()),
		client: client,

		healthURL: s.HealthURL,
	}
	srv.loadBits.Store(math.Float64bits(math.NaN()))
	srv.up.Store(true)
	return srv
}

// setUpLocked recomputes whether picks may choose s; s.mu is held.
func (s *server) setUpLocked() {
	s.probing.Store(s.eject == probing)
	s.up.Store(!s.down && (s.eject == inRotation || s.eject == probing))
}

// claimTrial makes the caller's request the trial of a server whose
// cool-down is over. It fails when another request claimed it first.
func (s *server) claimTrial() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.eject != probing {
		return false
	}
	s.eject = onTrial
	s.setUpLocked()
	return true
}

func (s *server) stateLocked() State {
	switch {
	case s.down:
		return StateUnhealthy
	case s.eject != inRotation:
		return StateEjected
	}
	return StateHealthy
}

// observe records the time to a response header.
func (s *server) observe(rtt time.Duration, now time.Time) {
	s.response.Observe(rtt)
	sec := rtt.Seconds()

	s.latMu.Lock()
	defer s.latMu.Unlock()
	ewma := math.Float64frombits(s.ewmaBits.Load())
	if ewma == 0 {
		ewma = sec
	} else {
		ewma += ewmaAlpha * (sec - ewma)
	}
	s.ewmaBits.Store(math.Float64bits(ewma))

	// Peak EWMA (Finagle, Linkerd): jump to a slower sample at once, decay
	// towards faster ones with the time since the last sample.
	ns := float64(rtt)
	peak := math.Float64frombits(s.peakBits.Load())
	at := now.UnixNano()
	if ns > peak {
		peak = ns
	} else {
		w := math.Exp(-float64(at-s.peakAt.Load()) / float64(peakDecay))
		peak = peak*w + ns*(1-w)
	}
	s.peakBits.Store(math.Float64bits(peak))
	s.peakAt.Store(at)
}

// unsampledPenalty is the cost of a server with requests in flight but no
// response-time sample yet: high, so it gets one request at a time until
// it has answered one (as Finagle does).
const unsampledPenalty = float64(time.Minute)

// cost is the request_based policy's expected cost of one more request to
// s at now (unix nanoseconds): the decayed peak response time times the
// requests that would be in flight, over the weight.
func (s *server) cost(now int64) float64 {
	n := float64(s.inFlight.Load())
	peak := math.Float64frombits(s.peakBits.Load())
	if peak == 0 {
		if n == 0 {
			return 0
		}
		return unsampledPenalty + n
	}
	if dt := now - s.peakAt.Load(); dt > 0 {
		peak *= math.Exp(-float64(dt) / float64(peakDecay))
	}
	return peak * (n + 1) / float64(s.weight)
}

// load returns the last polled load figure, or NaN when unknown.
func (s *server) load() float64 {
	return math.Float64frombits(s.loadBits.Load())
}

// ServerStats are one origin server's figures.
type ServerStats struct {
	// URL is the server's URL as configured.
	URL string `json:"url"`
	// Name labels the server in metrics and logs: the URL's host:port, and
	// its path when another server of the pool has the same host.
	Name   string `json:"name"`
	Weight int    `json:"weight"`
	State  State  `json:"state"`
	// Requests counts the requests sent (retries included); Failures
	// those that failed: no connection, timeouts, broken responses or
	// bodies, and 502, 503 and 504 answers (never a client's fault nor a
	// caller's cancellation; see the package doc).
	Requests uint64 `json:"requests"`
	Failures uint64 `json:"failures"`
	InFlight int64  `json:"in_flight"`
	// Responses counts response headers received; ResponseSeconds is the
	// sum of their times to first byte, ResponseBuckets their cumulative
	// counts per upper bound in seconds (latency.Bounds, as every
	// histogram of Outpost has).
	Responses       uint64             `json:"responses"`
	ResponseSeconds float64            `json:"response_seconds_total"`
	ResponseBuckets map[float64]uint64 `json:"-"`
	// LatencyEWMAMillis is a moving average of the time to first byte
	// (each response weighs 10%).
	LatencyEWMAMillis float64 `json:"latency_ewma_ms"`
	// Load is the last load figure polled (policy adaptive), nil when
	// unknown; LoadErrors counts failed polls.
	Load       *float64 `json:"load,omitempty"`
	LoadErrors uint64   `json:"load_errors,omitempty"`
	// LastError is the last failure's reason and LastErrorTime its time.
	LastError     string    `json:"last_error,omitempty"`
	LastErrorTime time.Time `json:"last_error_time,omitzero"`
}

func (s *server) stats() ServerStats {
	st := ServerStats{
		URL:               s.url.String(),
		Name:              s.name,
		Weight:            s.weight,
		Requests:          s.requests.Load(),
		Failures:          s.failures.Load(),
		InFlight:          s.inFlight.Load(),
		LatencyEWMAMillis: math.Round(math.Float64frombits(s.ewmaBits.Load())*1e6) / 1e3,
		LoadErrors:        s.loadErrors.Load(),
	}
	st.ResponseBuckets, st.Responses, st.ResponseSeconds = s.response.Snapshot()
	if l := s.load(); !math.IsNaN(l) {
		st.Load = &l
	}
	s.mu.Lock()
	st.State = s.stateLocked()
	st.LastError = s.lastErr
	st.LastErrorTime = s.lastFail
	s.mu.Unlock()
	return st
}

// hashString is 64-bit FNV-1a: deterministic, so every PoP maps a key to
// the same server.
func hashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// mix is the splitmix64 finalizer, a bijection that spreads every input
// bit over the output.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
