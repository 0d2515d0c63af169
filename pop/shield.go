package pop

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/outpost-cdn/outpost/cache"
	"github.com/outpost-cdn/outpost/config"
	"github.com/outpost-cdn/outpost/origin"
)

// The origin shield (a service's shield): the service's other PoPs send
// their fills to one of the shield PoPs instead of the origin, chosen by
// rendezvous hashing on the cache key over the shields that answer (an
// origin.Pool of policy ip_hash on cache_key, whose servers are the
// shields' serving addresses), so each object has one shield and the
// origin sees one request per object however many PoPs miss it. A shield
// that cannot be reached is skipped (the pool retries a failed connect on
// the next shield by the hash, and ejects one that keeps failing); with
// none reachable the PoP goes to the origin itself.
//
// Each edge also probes each shield actively (the pool's health checks,
// on the shield's admin /healthz, every shield.health.interval): a shield
// that answers 503 "draining" is out of rotation at once, so edges stop
// sending to a shield that shuts down before its listener closes; fall
// failed checks in a row take it out, rise passes bring it back; with no
// shield in rotation the edge goes straight to the origin.
//
// Loops cannot form: a shield PoP always fetches from the origin, and a
// request that already passed through an Outpost PoP (its CDN-Loop, RFC
// 8586, has an outpost member) is never sent to a shield. Each PoP adds
// its own CDN-Loop member to what it forwards, and a request whose
// CDN-Loop or Via already names this PoP is answered 508 Loop Detected.
//
// The shield answers the edge as it answers any client, with its
// Cache-Status member, which the edge keeps before its own (RFC 9211: one
// member per cache, the origin's end first). The edge tells the shield
// the client's scheme (X-Forwarded-Proto), which the shield uses for the
// cache key and the origin (and it does not redirect such requests to
// HTTPS), so http and https objects stay apart in both tiers. Shields are
// PoPs of the same file, so purges reach them as any PoP.

// cdnID is Outpost's cdn-id in CDN-Loop (RFC 8586 §2).
const cdnID = "outpost"

// shieldTier is a service's shield as an edge PoP runs it.
type shieldTier struct {
	pool  *origin.Pool
	names []string // the shield PoPs, in the order of the pool's servers
}

// shieldCounters count an edge's shield requests.
type shieldCounters struct {
	sent, fellBack atomic.Uint64
	loops          atomic.Uint64
}

// newShield returns the shield tier of sc for the PoP named self: nil
// when the service has no shield or self is one of its shields (a shield
// goes to the origin).
func newShield(sc *config.Service, self string, log *slog.Logger) (*shieldTier, error) {
	s := sc.Shield
	if !s.Enabled() || s.Has(self) {
		return nil, nil
	}
	servers := make([]origin.Server, len(s.Addrs))
	for i, a := range s.Addrs {
		servers[i] = origin.Server{URL: &url.URL{Scheme: "http", Host: a}, Weight: 1}
		if i < len(s.Admins) {
			servers[i].HealthURL = &url.URL{Scheme: "http", Host: s.Admins[i], Path: "/healthz"}
		}
	}
	var health *origin.HealthCheck
	if len(s.Admins) == len(s.Addrs) { // a config.Shield made by hand may have none: passive ejection only
		h := s.Health.WithDefaults()
		health = &origin.HealthCheck{Interval: h.Interval, Timeout: h.Timeout, Rise: h.Rise, Fall: h.Fall, Draining: "draining"}
	}
	o := &sc.Origin
	pool, err := origin.NewPool(servers, origin.Options{
		Name:    sc.Name + "/shield",
		Policy:  origin.PolicyIPHash,
		HashKey: origin.HashCacheKey,
		Timeouts: origin.Timeouts{
			Connect:   min(o.Timeouts.Connect, time.Second),
			FirstByte: o.Timeouts.FirstByte + 2*time.Second, // the shield may itself wait that long on the origin
			Idle:      o.Timeouts.Idle,
		},
		Ejection: origin.Ejection{Failures: 2, Cooldown: 10 * time.Second},
		Health:   health,
		Logger:   log,
	})
	if err != nil {
		return nil, fmt.Errorf("service %s: shield: %w", sc.Name, err)
	}
	return &shieldTier{pool: pool, names: s.POPs}, nil
}

// close releases the shield pool's connections.
func (s *shieldTier) close() {
	if s != nil {
		s.pool.Close()
	}
}

// fetchOrigin sends a fill's request to the service's shield, when it has
// one and the request may go there, else (or when no shield answers) to
// the origin.
func (p *PoP) fetchOrigin(ctx context.Context, svc *service, out origin.Request) (*http.Response, error) {
	if svc.shield == nil || viaOutpost(out.Header, p.name) {
		return svc.pool.Do(ctx, out)
	}
	if svc.shield.pool.InRotation() == 0 {
		svc.edge.shield.fellBack.Add(1)
		p.log.Debug("no shield in rotation; fetching from the origin", "service", svc.name)
		return svc.pool.Do(ctx, out)
	}
	sh := out
	sh.Host = out.Header.Get("X-Forwarded-Host")
	svc.edge.shield.sent.Add(1)
	resp, err := svc.shield.pool.Do(ctx, sh)
	if err == nil {
		return resp, nil
	}
	if ctx.Err() != nil {
		return nil, err
	}
	svc.edge.shield.fellBack.Add(1)
	p.log.Warn("no shield answered; fetching from the origin", "service", svc.name, "err", err)
	return svc.pool.Do(ctx, out)
}

// viaOutpost reports whether a forwarded request's CDN-Loop has a member
// of another Outpost PoP than self: the request came from a PoP, and must
// not go to a shield again.
func viaOutpost(h http.Header, self string) bool {
	for _, m := range cdnLoopMembers(h) {
		if id, pop := m.id, m.pop; id == cdnID && pop != self {
			return true
		}
	}
	return false
}

// cdnLoopMember is one CDN-Loop member: its cdn-id and pop parameter.
type cdnLoopMember struct{ id, pop string }

// cdnLoopMembers parses CDN-Loop (RFC 8586 §2), leniently.
func cdnLoopMembers(h http.Header) []cdnLoopMember {
	var out []cdnLoopMember
	for _, line := range h["Cdn-Loop"] {
		for member := range strings.SplitSeq(line, ",") {
			parts := strings.Split(member, ";")
			m := cdnLoopMember{id: strings.ToLower(strings.TrimSpace(parts[0]))}
			for _, param := range parts[1:] {
				if k, v, ok := strings.Cut(strings.TrimSpace(param), "="); ok && strings.EqualFold(k, "pop") {
					m.pop = strings.Trim(v, `"`)
				}
			}
			out = append(out, m)
		}
	}
	return out
}

// cdnLoopMember is this PoP's CDN-Loop member.
func (p *PoP) cdnLoopMember() string { return cdnID + "; pop=" + p.name }

// looped reports whether r already passed through this PoP: its CDN-Loop
// or Via names it.
func (p *PoP) looped(r *http.Request) bool {
	if r.Header["Cdn-Loop"] == nil && r.Header["Via"] == nil {
		return false
	}
	for _, m := range cdnLoopMembers(r.Header) {
		if m.id == cdnID && m.pop == p.name {
			return true
		}
	}
	for _, v := range r.Header["Via"] {
		for member := range strings.SplitSeq(v, ",") {
			if f := strings.Fields(member); len(f) >= 3 && f[1] == p.name && f[2] == "(outpost)" {
				return true
			}
		}
	}
	return false
}

// edgeHTTPS reports whether a plain-HTTP request came from an Outpost PoP
// (CDN-Loop; looped has turned away those that name this PoP) for an
// https URL (X-Forwarded-Proto). A client that forges both only gets, on
// its own connection, what the https URL answers: the cache key and the
// origin request follow the same claim, so nothing stored is poisoned.
func edgeHTTPS(r *http.Request) bool {
	return r.Header["Cdn-Loop"] != nil && r.Header.Get("X-Forwarded-Proto") == "https" && viaOutpost(r.Header, "")
}

// statusLoop is the Cache-Status of a 508.
var statusLoop = cache.Status{Fwd: cache.FwdBypass, Detail: "loop"}

// setShield gives svc its shield tier for this PoP (made here, where the
// PoP's name is known): none when svc has no shield, or this PoP is one
// of its shields, which then go to the origin and do not answer the
// service's hits on the HTTP/1.1 fast path (its key has no scheme from
// X-Forwarded-Proto).
func (p *PoP) setShield(svc *service, sc *config.Service) {
	svc.isShield = sc.Shield.Has(p.name)
	sh, err := newShield(sc, p.name, p.log)
	if err != nil {
		p.log.Error("shield not used", "service", svc.name, "err", err)
		return
	}
	svc.shield = sh
}

// loopDetected answers a request that came back to this PoP (RFC 8586 §3,
// RFC 5842 §7.2).
func (p *PoP) loopDetected(w http.ResponseWriter, r *http.Request, svc *service) {
	svc.edge.shield.loops.Add(1)
	p.plainError(w, r, svc, http.StatusLoopDetected, statusLoop, "outpost: Loop Detected: the request came back to this PoP\n")
}

var descShieldUp = prometheus.NewDesc("outpost_pop_shield_up",
	"1 while this edge sends the service's fills to the shield PoP (its health checks pass and it is not ejected), else 0.",
	[]string{"service", "shield"}, nil)

// shieldCollector exports each edge's view of its shields.
type shieldCollector struct{ p *PoP }

// Describe sends the metric description.
func (c shieldCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descShieldUp }

// Collect reads each shield's state from the services' shield pools.
func (c shieldCollector) Collect(ch chan<- prometheus.Metric) {
	for _, svc := range c.p.routes.Load().list {
		if svc.shield == nil {
			continue
		}
		for i, st := range svc.shield.pool.Stats().Servers {
			name := st.Name
			if i < len(svc.shield.names) {
				name = svc.shield.names[i]
			}
			ch <- prometheus.MustNewConstMetric(descShieldUp, prometheus.GaugeValue, boolValue(st.State == origin.StateHealthy), svc.name, name)
		}
	}
}
