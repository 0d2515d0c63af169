package bench

import (
	"context"
	"io"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/outpost-cdn/outpost/origin/synthetic"
)

// worker is one virtual client: one connection, one region, its own DNS
// answer. Everything it needs per request is allocated once.
type worker struct {
	r      *run
	id     uint64
	client client
	shard  *shard
	resp   response
	path   []byte
	sample sample

	// DNS targeting
	region    int
	resolver  *resolver
	dnsExpiry time.Time
	hasAddr   bool

	timer *time.Timer
}

// loop sends requests until the schedule or ctx ends the run.
func (w *worker) loop(ctx context.Context) {
	defer w.client.close()
	s := w.r.sched
	for j := uint64(0); ; j++ {
		if ctx.Err() != nil {
			return
		}
		var sl slot
		var ok bool
		if s.open {
			if sl, ok = s.openSlot(w.id, j); !ok || !w.wait(ctx, sl.due) {
				return
			}
			if sl.measured, ok = s.claim(sl.due); !ok {
				return
			}
		} else if sl, ok = s.closedSlot(time.Now()); !ok {
			return
		}
		path, ok := w.r.cfg.Workload.Next(w.path[:0], sl.k, sl.due.Sub(s.start))
		if !ok {
			return
		}
		w.path = path
		w.send(ctx, sl)
		if ctx.Err() != nil {
			return // the run was cancelled: this request's fate is unknown
		}
		w.shard.record(&w.sample)
	}
}

// wait sleeps until due; false if ctx ended first.
func (w *worker) wait(ctx context.Context, due time.Time) bool {
	d := time.Until(due)
	if d <= 0 {
		return true
	}
	if w.timer == nil {
		w.timer = time.NewTimer(d)
	} else {
		w.timer.Reset(d)
	}
	select {
	case <-w.timer.C:
		return true
	case <-ctx.Done():
		w.timer.Stop()
		return false
	}
}

// send sends one request and fills w.sample.
func (w *worker) send(ctx context.Context, sl slot) {
	x := &w.sample
	*x = sample{measured: sl.measured, interval: -1, region: w.region}
	if sl.measured {
		x.interval = max(int(sl.due.Sub(w.r.sched.windowStart())/w.r.interval), 0)
	}
	if w.resolver != nil && (!w.hasAddr || !time.Now().Before(w.dnsExpiry)) {
		if err := w.resolve(ctx); err != nil && !w.hasAddr {
			x.kind = errDNS
			x.latency = time.Since(sl.due)
			return
		}
	}
	var body io.Writer
	var v *verification
	if w.r.cfg.Verify && w.r.cfg.Method == "GET" {
		v = newVerification(w.path)
		if v != nil {
			body = v
		}
	}
	w.resp.reset(body)
	err := w.client.do(ctx, w.path, time.Now().Add(w.r.cfg.Timeout), &w.resp)
	x.latency = time.Since(sl.due)
	x.addr = w.resp.addr
	x.kind = kindOf(err)
	x.status = w.resp.status
	x.bytes = w.resp.bodyBytes
	x.answered = w.resp.status != 0
	if !x.answered {
		return
	}
	x.proto = w.resp.proto
	if x.proto == "" {
		x.proto = protoHTTP1
	}
	cs, ok := ParseCacheStatus(w.resp.cacheStatus)
	if ok {
		x.class = Classify(cs)
		x.pop = cs.Name
	}
	if err != nil {
		x.class = Error // the response was cut short
		return
	}
	switch {
	case x.status >= 500:
		x.kind = errStatus5xx
	case x.status >= 400:
		x.kind = errStatus4xx
	case v != nil && x.status == 200 && !v.ok(x.bytes):
		x.kind = errBody
	}
	if x.proto != w.r.proto {
		// Measured, but not what was asked for: an HTTP/2 run against a
		// server without HTTP/2 must not pass for one.
		x.kind = errProtocol
	}
}

// resolve asks the DNS server for the service's address and points the
// client at it. On failure a client that has an address keeps it and asks
// again a second later; one that has none asks again with its next
// request.
func (w *worker) resolve(ctx context.Context) error {
	res, err := w.resolver.resolve(ctx)
	if err != nil {
		if ctx.Err() == nil {
			w.r.cfg.Logger.Debug("bench: DNS resolution failed", "client", w.id, "err", err)
			w.shard.recordDNS(res, "", true)
		}
		w.dnsExpiry = time.Now().Add(time.Second)
		return err
	}
	addr := netip.AddrPortFrom(res.addr, w.r.port).String()
	w.shard.recordDNS(res, res.addr.String(), false)
	w.client.setAddr(addr)
	w.hasAddr = true
	w.dnsExpiry = time.Now().Add(res.ttl)
	return nil
}

// verification checks a body against the synthetic origin's content for
// the id in the request path (/obj/{id}), and its length against the size
// the request asked for (?size=) or the origin's own size for the id.
type verification struct {
	v    *synthetic.Verifier
	err  error
	want int64
}

// newVerification returns nil for paths that are not synthetic objects.
func newVerification(path []byte) *verification {
	p, q, _ := strings.Cut(string(path), "?")
	id, ok := strings.CutPrefix(p, "/obj/")
	if !ok || id == "" {
		return nil
	}
	if unescaped, err := url.PathUnescape(id); err == nil {
		id = unescaped
	}
	want := synthetic.SizeOf(id)
	if values, err := url.ParseQuery(q); err == nil && values.Has("size") {
		n, err := synthetic.ParseSize(values.Get("size"))
		if err != nil {
			return nil // the origin answers 400: nothing to verify
		}
		want = n
	}
	return &verification{v: synthetic.NewVerifier(id, 0), want: want}
}

// Write checks p; after the first mismatch it only counts.
func (v *verification) Write(p []byte) (int, error) {
	if v.err == nil {
		_, v.err = v.v.Write(p)
	}
	return len(p), nil
}

// ok reports whether the body was the object, whole.
func (v *verification) ok(n int64) bool { return v.err == nil && n == v.want }
