package origin

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Policy names how a pool chooses the server for each request.
type Policy string

// The balancing policies.
const (
	// PolicyRoundRobin sends requests to the servers in turn, ignoring
	// weights. Lock-free; the default.
	PolicyRoundRobin Policy = "round_robin"
	// PolicyWeightedRoundRobin sends requests in proportion to weight,
	// spread out (nginx's smooth weighted round robin: weights 3 and 1 give
	// a a b a, never a run longer than a server's weight).
	PolicyWeightedRoundRobin Policy = "weighted_round_robin"
	// PolicyLeastConnections picks the server with the fewest requests in
	// flight; ties go round robin.
	PolicyLeastConnections Policy = "least_connections"
	// PolicyWeightedLeastConnections picks the server with the fewest
	// requests in flight per unit of weight; ties go by smooth weighted
	// round robin, so an idle pool still honours the weights.
	PolicyWeightedLeastConnections Policy = "weighted_least_connections"
	// PolicyAdaptive polls a load figure from each server (Options.Load)
	// and weights each server by its weight over its load relative to the
	// pool's mean, within a factor of 10 either way so none is starved;
	// a server whose load is unknown counts as average.
	PolicyAdaptive Policy = "adaptive"
	// PolicyIPHash sends each key (Options.HashKey: the client's address
	// or the cache key) to the same server by weighted rendezvous hashing:
	// adding a server to n moves about 1/(n+1) of the keys, and removing
	// one moves only its own.
	PolicyIPHash Policy = "ip_hash"
	// PolicyRequestBased picks the cheaper of two random servers, the cost
	// being a peak-weighted moving average of the response time times the
	// requests in flight, over the weight (Finagle's and Linkerd's
	// peak-EWMA with power of two choices), so slow servers get less work.
	PolicyRequestBased Policy = "request_based"
)

// Weighted reports whether p honours server weights: every policy but
// PolicyRoundRobin (and "", which means it) and PolicyLeastConnections.
func (p Policy) Weighted() bool {
	return p != PolicyRoundRobin && p != "" && p != PolicyLeastConnections
}

// Policies returns every policy, the default first.
func Policies() []Policy {
	return []Policy{
		PolicyRoundRobin, PolicyWeightedRoundRobin, PolicyLeastConnections,
		PolicyWeightedLeastConnections, PolicyAdaptive, PolicyIPHash, PolicyRequestBased,
	}
}

// HashKey says what PolicyIPHash hashes.
type HashKey string

// The keys PolicyIPHash can hash.
const (
	// HashClientIP keeps each client on one server (Request.ClientIP;
	// requests without one go round robin).
	HashClientIP HashKey = "client_ip"
	// HashCacheKey sends every miss of one object to one server
	// (Request.CacheKey, or the request target when it is empty).
	HashCacheKey HashKey = "cache_key"
)

// pickContext is what a balancer may use to choose.
type pickContext struct {
	key     string  // PolicyIPHash: what to hash; "" for none
	exclude *server // a server not to choose (the one a retry moves away from)
}

// usable reports whether s may be chosen.
func (c *pickContext) usable(s *server) bool {
	return s != c.exclude && s.up.Load()
}

// A balancer chooses a server for one request among those usable, or
// returns nil when none is. It is safe for concurrent use.
type balancer interface {
	pick(c *pickContext) *server
}

var (
	_ balancer = (*roundRobin)(nil)
	_ balancer = (*smoothWeighted)(nil)
	_ balancer = (*leastConns)(nil)
	_ balancer = (*weightedLeastConns)(nil)
	_ balancer = (*adaptive)(nil)
	_ balancer = (*rendezvous)(nil)
	_ balancer = (*leastCost)(nil)
)

// newBalancer makes the balancer for policy over servers.
func newBalancer(policy Policy, servers []*server, loadGen *atomic.Uint64, now func() time.Time) (balancer, error) {
	switch policy {
	case PolicyRoundRobin, "":
		return &roundRobin{servers: servers}, nil
	case PolicyWeightedRoundRobin:
		return newSmoothWeighted(servers), nil
	case PolicyLeastConnections:
		return &leastConns{servers: servers}, nil
	case PolicyWeightedLeastConnections:
		return &weightedLeastConns{servers: servers, current: make([]int64, len(servers)), conns: make([]int64, len(servers))}, nil
	case PolicyAdaptive:
		return &adaptive{servers: servers, gen: loadGen, seen: ^uint64(0),
			effective: make([]float64, len(servers)), current: make([]float64, len(servers))}, nil
	case PolicyIPHash:
		return newRendezvous(servers), nil
	case PolicyRequestBased:
		return &leastCost{servers: servers, now: now}, nil
	}
	var names []string
	for _, p := range Policies() {
		names = append(names, string(p))
	}
	return nil, fmt.Errorf("origin: unknown policy %q (want one of %s)", policy, strings.Join(names, ", "))
}

// roundRobin takes the servers in turn; an unusable server's turn goes to
// the next usable one.
type roundRobin struct {
	servers []*server
	next    atomic.Uint64
}

func (b *roundRobin) pick(c *pickContext) *server {
	n := uint64(len(b.servers))
	start := b.next.Add(1) - 1
	for i := range n {
		if s := b.servers[(start+i)%n]; c.usable(s) {
			return s
		}
	}
	return nil
}

// smoothWeighted is nginx's smooth weighted round robin: each pick adds
// every usable server's weight to its current value, takes the largest,
// and takes the sum of the weights off the chosen one.
type smoothWeighted struct {
	servers []*server
	mu      sync.Mutex
	current []int64
}

func newSmoothWeighted(servers []*server) *smoothWeighted {
	return &smoothWeighted{servers: servers, current: make([]int64, len(servers))}
}

func (b *smoothWeighted) pick(c *pickContext) *server {
	b.mu.Lock()
	defer b.mu.Unlock()
	best, total := -1, int64(0)
	for i, s := range b.servers {
		if !c.usable(s) {
			continue
		}
		w := int64(s.weight)
		b.current[i] += w
		total += w
		if best < 0 || b.current[i] > b.current[best] {
			best = i
		}
	}
	if best < 0 {
		return nil
	}
	b.current[best] -= total
	return b.servers[best]
}

// leastConns picks the fewest requests in flight, scanning from a
// rotating start so that ties go round robin.
type leastConns struct {
	servers []*server
	next    atomic.Uint64
}

func (b *leastConns) pick(c *pickContext) *server {
	n := uint64(len(b.servers))
	start := b.next.Add(1) - 1
	var best *server
	var bestN int64
	for i := range n {
		s := b.servers[(start+i)%n]
		if !c.usable(s) {
			continue
		}
		if l := s.inFlight.Load(); best == nil || l < bestN {
			best, bestN = s, l
		}
	}
	return best
}

// weightedLeastConns picks the fewest requests in flight per unit of
// weight; among ties, smooth weighted round robin decides (as nginx does).
type weightedLeastConns struct {
	servers []*server
	mu      sync.Mutex
	current []int64
	conns   []int64 // scratch: in-flight counts read once per pick
}

func (b *weightedLeastConns) pick(c *pickContext) *server {
	b.mu.Lock()
	defer b.mu.Unlock()
	best := -1
	for i, s := range b.servers {
		if !c.usable(s) {
			b.conns[i] = -1
			continue
		}
		b.conns[i] = s.inFlight.Load()
		// conns[i]/w[i] < conns[best]/w[best], without division.
		if best < 0 || b.conns[i]*int64(b.servers[best].weight) < b.conns[best]*int64(s.weight) {
			best = i
		}
	}
	if best < 0 {
		return nil
	}
	chosen, total := -1, int64(0)
	for i, s := range b.servers {
		if b.conns[i] < 0 || b.conns[i]*int64(b.servers[best].weight) != b.conns[best]*int64(s.weight) {
			continue
		}
		w := int64(s.weight)
		b.current[i] += w
		total += w
		if chosen < 0 || b.current[i] > b.current[chosen] {
			chosen = i
		}
	}
	b.current[chosen] -= total
	return b.servers[chosen]
}

// adaptive is smooth weighted round robin over weights scaled by the
// inverse of each server's polled load relative to the mean. The scaled
// weights are computed again when a poll changes a load (gen moves).
type adaptive struct {
	servers   []*server
	gen       *atomic.Uint64
	mu        sync.Mutex
	seen      uint64
	effective []float64
	current   []float64
}

// Bounds of the load factor: an idle server gets up to 10 times its
// weight, a loaded one no less than a tenth.
const (
	loadSmoothing = 0.1
	maxLoadFactor = 10
	minLoadFactor = 0.1
)

func (b *adaptive) pick(c *pickContext) *server {
	b.mu.Lock()
	defer b.mu.Unlock()
	if g := b.gen.Load(); g != b.seen {
		b.seen = g
		b.reweigh()
	}
	best, total := -1, 0.0
	for i, s := range b.servers {
		if !c.usable(s) {
			continue
		}
		b.current[i] += b.effective[i]
		total += b.effective[i]
		if best < 0 || b.current[i] > b.current[best] {
			best = i
		}
	}
	if best < 0 {
		return nil
	}
	b.current[best] -= total
	return b.servers[best]
}

// reweigh sets each server's effective weight: weight / (relative load +
// 0.1), where relative load is its load over the mean of the known loads
// (1 when its own is unknown), kept within [weight/10, weight*10].
func (b *adaptive) reweigh() {
	sum, known := 0.0, 0
	for _, s := range b.servers {
		if l := s.load(); !math.IsNaN(l) {
			sum += l
			known++
		}
	}
	for i, s := range b.servers {
		rel := 1.0
		if l := s.load(); !math.IsNaN(l) {
			if mean := sum / float64(known); mean > 0 {
				rel = l / mean
			} else {
				rel = 0
			}
		}
		f := min(max(1/(rel+loadSmoothing), minLoadFactor), maxLoadFactor)
		b.effective[i] = float64(s.weight) * f
	}
}

// rendezvous is weighted rendezvous (highest random weight) hashing: each
// server scores weight / -ln(u), u being a uniform hash of the key and the
// server, and the highest score wins. Among servers of equal weight the
// highest hash wins, so the logarithm is taken once per distinct weight.
// Requests without a key go round robin.
type rendezvous struct {
	servers  []*server
	class    []int     // index of each server's weight in weights
	weights  []float64 // the distinct weights
	fallback roundRobin
}

// maxWeightClasses is how many distinct weights rendezvous handles with
// one logarithm per weight; beyond it, it takes one per server.
const maxWeightClasses = 8

func newRendezvous(servers []*server) *rendezvous {
	b := &rendezvous{servers: servers, class: make([]int, len(servers)), fallback: roundRobin{servers: servers}}
	index := make(map[int]int)
	for i, s := range servers {
		c, ok := index[s.weight]
		if !ok {
			c = len(b.weights)
			index[s.weight] = c
			b.weights = append(b.weights, float64(s.weight))
		}
		b.class[i] = c
	}
	return b
}

func (b *rendezvous) pick(c *pickContext) *server {
	if c.key == "" {
		return b.fallback.pick(c)
	}
	key := hashString(c.key)
	if len(b.weights) > maxWeightClasses {
		return b.pickEach(c, key)
	}
	var top [maxWeightClasses]*server
	var topH [maxWeightClasses]uint64
	for i, s := range b.servers {
		if !c.usable(s) {
			continue
		}
		k := b.class[i]
		if h := mix(key ^ s.seed); top[k] == nil || h > topH[k] {
			top[k], topH[k] = s, h
		}
	}
	if len(b.weights) == 1 {
		return top[0]
	}
	var best *server
	bestScore := 0.0
	for k, s := range top[:len(b.weights)] {
		if s == nil {
			continue
		}
		if score := b.weights[k] / -math.Log(unit(topH[k])); best == nil || score > bestScore {
			best, bestScore = s, score
		}
	}
	return best
}

// pickEach scores every server on its own.
func (b *rendezvous) pickEach(c *pickContext, key uint64) *server {
	var best *server
	bestScore := 0.0
	for i, s := range b.servers {
		if !c.usable(s) {
			continue
		}
		if score := b.weights[b.class[i]] / -math.Log(unit(mix(key^s.seed))); best == nil || score > bestScore {
			best, bestScore = s, score
		}
	}
	return best
}

// unit maps a hash to (0, 1): its top 53 bits, centred in their interval.
func unit(h uint64) float64 {
	return (float64(h>>11) + 0.5) / (1 << 53)
}

// leastCost is the power of two choices over the servers' peak-EWMA cost.
type leastCost struct {
	servers []*server
	now     func() time.Time
}

func (b *leastCost) pick(c *pickContext) *server {
	n := len(b.servers)
	now := b.now().UnixNano()
	if n >= 2 {
		for range 3 {
			i := rand.IntN(n)
			j := rand.IntN(n - 1)
			if j >= i {
				j++
			}
			x, y := b.servers[i], b.servers[j]
			ux, uy := c.usable(x), c.usable(y)
			switch {
			case ux && uy:
				if y.cost(now) < x.cost(now) {
					return y
				}
				return x
			case ux:
				return x
			case uy:
				return y
			}
		}
	}
	// Few usable servers: take the cheapest of them all.
	var best *server
	bestCost := 0.0
	for _, s := range b.servers {
		if !c.usable(s) {
			continue
		}
		if cost := s.cost(now); best == nil || cost < bestCost {
			best, bestCost = s, cost
		}
	}
	return best
}
