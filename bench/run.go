package bench

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"runtime"
	"strconv"
	"sync"
	"time"
)

// ErrNoResponses reports a run in which no request got a response:
// nothing could connect or resolve, say. Run returns it wrapped, with the
// result.
var ErrNoResponses = errors.New("bench: no request got a response")

// run is one call of Run.
type run struct {
	cfg      Config
	target   target
	port     uint16
	sched    *schedule
	shards   []*shard
	interval time.Duration // step of the time series
	proto    string        // the responses' expected protocol version ("HTTP/2.0")
}

// expectedProto maps Config.Protocol to the version its responses report.
var expectedProto = map[string]string{ProtocolHTTP1: protoHTTP1, ProtocolHTTP2: protoHTTP2, ProtocolHTTP3: protoHTTP3}

// Run sends cfg's workload to cfg's target until the run is over (its
// duration, its request count or the end of its trace) or ctx is done, and
// returns what it measured. When progress is not nil it receives a
// progress line about once a second (carriage return, no newline), and a
// cleared line at the end.
//
// A cancelled ctx (Ctrl-C) ends the run early: requests in flight are
// abandoned, and the result covers what finished, with Interrupted set.
// Run returns an error without a result when cfg is invalid or the origin's
// stats cannot be read before the start, and the result with an error
// wrapping ErrNoResponses when requests were sent but none was answered.
func Run(ctx context.Context, cfg Config, progress io.Writer) (*Result, error) {
	t, err := cfg.check()
	if err != nil {
		return nil, err
	}
	port, _ := strconv.ParseUint(t.port, 10, 16)
	r := &run{cfg: cfg, target: t, port: uint16(port), interval: time.Second, proto: expectedProto[cfg.Protocol]}
	if cfg.Duration > 10*time.Minute {
		r.interval = (cfg.Duration / 600).Round(time.Second) // at most ~600 points
	}
	var origin *originStats
	if cfg.OriginStats != "" {
		origin = newOriginStats(cfg.OriginStats)
		defer origin.close()
		if _, err := origin.read(ctx, false); err != nil {
			return nil, err // unreachable: better to know before the load
		}
	}

	res := &Result{
		Target: cfg.URL, Connect: cfg.Connect, DNS: cfg.DNS, Workload: cfg.Workload.Name(),
		Connections: cfg.Connections, Seed: cfg.Seed, WarmupSeconds: cfg.Warmup.Seconds(),
		Protocol: cfg.Protocol,
	}
	nShards := min(cfg.Connections, max(4, 2*runtime.GOMAXPROCS(0)))
	for range nShards {
		r.shards = append(r.shards, newShard(len(cfg.Regions)))
	}
	workers := r.workers()

	if origin != nil && cfg.Warmup == 0 {
		if err := origin.reset(ctx); err != nil {
			return nil, err
		}
	}
	start := time.Now()
	r.sched = newSchedule(&r.cfg, start)
	res.Started = start
	res.Mode = "closed"
	if r.sched.open {
		res.Mode = "open"
		res.Rate = cfg.Rate
	}
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()

	var wg, others sync.WaitGroup
	if origin != nil && cfg.Warmup > 0 {
		at := r.sched.windowStart()
		r.sched.hold()
		others.Go(func() { origin.resetAt(runCtx, r.sched, at, cfg.Logger) })
	}
	for _, w := range workers {
		wg.Go(func() { w.loop(runCtx) })
	}
	progressDone := make(chan struct{})
	if progress != nil {
		others.Go(func() { r.progress(progress, progressDone) })
	}
	wg.Wait()
	finished := time.Now()
	stopRun() // a reset still waiting for the window has nothing to measure
	close(progressDone)
	others.Wait()

	window := max(finished.Sub(r.sched.windowStart()), 0)
	m := mergeShards(r.shards, len(cfg.Regions))
	res.fill(m, cfg.Regions, window, r.interval)
	res.Interrupted = ctx.Err() != nil
	if cfg.DNS != "" {
		res.DNSFigures = &DNSFigures{Queries: m.dns.queries, Failures: m.dns.failures, TCPRetries: m.dns.tcpRetries, Answers: m.dns.answers}
	}
	if origin != nil && origin.wasReset() {
		// Read even after Ctrl-C: the figures are wanted all the more.
		octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		st, err := origin.read(octx, false)
		cancel()
		if err != nil {
			cfg.Logger.Warn("bench: reading the origin's stats after the run", "err", err)
		} else {
			res.Origin = &Origin{Requests: st.Requests.Total, BytesSent: st.BytesSent}
			if res.Bytes > 0 {
				off := 1 - float64(st.BytesSent)/float64(res.Bytes)
				res.OriginOffload = &off
			}
		}
	}
	if res.Requests > 0 && res.Responses == 0 {
		return res, fmt.Errorf("%w: %s", ErrNoResponses, summarizeErrors(res.ErrorsByKind))
	}
	return res, nil
}

// workers makes the virtual clients.
func (r *run) workers() []*worker {
	cfg, t := &r.cfg, r.target
	var tlsConfig *tls.Config
	if t.url.Scheme == "https" {
		tlsConfig = &tls.Config{ServerName: t.name, InsecureSkipVerify: cfg.InsecureTLS, NextProtos: []string{"http/1.1"}}
	}
	ws := make([]*worker, cfg.Connections)
	for i := range ws {
		w := &worker{
			r:      r,
			id:     uint64(i),
			shard:  r.shards[i%len(r.shards)],
			path:   make([]byte, 0, 256),
			region: -1,
		}
		addr := t.direct
		if cfg.DNS != "" {
			addr = "" // set by the first resolution
			var client netip.Addr
			bits := 0
			if len(cfg.Regions) > 0 {
				w.region = pickRegion(cfg.Regions, cfg.Seed, i)
				p := cfg.Regions[w.region].Prefix
				client, bits = clientAddr(p, cfg.Seed, i), p.Bits()
			}
			w.resolver = newResolver(cfg.DNS, t.name, client, bits, min(cfg.Timeout, 5*time.Second))
		}
		switch cfg.Protocol {
		case ProtocolHTTP2, ProtocolHTTP3:
			var tc *tls.Config
			if tlsConfig != nil {
				tc = &tls.Config{ServerName: t.name, InsecureSkipVerify: cfg.InsecureTLS}
			}
			w.client = newStdClient(cfg.Protocol, addr, t.url.Scheme, cfg.Method, t.host, cfg.Header, tc, cfg.Timeout)
		default:
			w.client = newH1Client(addr, cfg.Method, t.host, cfg.Header, tlsConfig, cfg.Timeout)
		}
		ws[i] = w
	}
	return ws
}

// summarizeErrors names the most frequent error kinds.
func summarizeErrors(kinds map[string]int64) string {
	s := ""
	for k := errKind(1); k < numErrKinds; k++ {
		if n := kinds[k.String()]; n > 0 {
			if s != "" {
				s += ", "
			}
			s += fmt.Sprintf("%d %s", n, k)
		}
	}
	if s == "" {
		return "no errors recorded"
	}
	return s + " errors"
}
