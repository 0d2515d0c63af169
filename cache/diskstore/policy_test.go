package diskstore

import (
	"container/list"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"testing"
)

// trace is a synthetic request trace: keys drawn from a Zipf popularity
// of exponent alpha over n keys, each key with a fixed size from a
// log-normal distribution (median 32 KiB, clipped to [1 KiB, 8 MiB]), as
// object sizes of web caches are spread.
type trace struct {
	keys  []int
	sizes []int64
	total int64 // bytes of all distinct keys
}

func zipfTrace(n, requests int, alpha float64, seed uint64) trace {
	r := rand.New(rand.NewPCG(seed, 1))
	cdf := make([]float64, n)
	var sum float64
	for i := range n {
		sum += 1 / math.Pow(float64(i+1), alpha)
		cdf[i] = sum
	}
	// Popularity rank is independent of size: shuffle which key has
	// which rank.
	perm := r.Perm(n)
	tr := trace{keys: make([]int, requests), sizes: make([]int64, n)}
	for i := range n {
		s := math.Exp(math.Log(32<<10) + 1.5*r.NormFloat64())
		tr.sizes[i] = blocks(int64(min(max(s, 1<<10), 8<<20)))
		tr.total += tr.sizes[i]
	}
	for i := range tr.keys {
		tr.keys[i] = perm[sort.SearchFloat64s(cdf, r.Float64()*sum)]
	}
	return tr
}

// replayS3FIFO returns the byte hit ratio of the policy on tr.
func replayS3FIFO(tr trace, capacity int64, promoteAt uint32) float64 {
	p := newPolicy(capacity)
	p.promoteAt = promoteAt
	nodes := make(map[int]*node)
	var hit, all int64
	var victims []*node
	for _, k := range tr.keys {
		all += tr.sizes[k]
		if n, ok := nodes[k]; ok {
			hit += tr.sizes[k]
			n.hit()
			continue
		}
		n := &node{size: tr.sizes[k], hash: uint64(k) * 0x9E3779B97F4A7C15}
		n.owner = &item{key: fmt.Sprint(k)}
		nodes[k] = n
		victims = p.add(n, 0, victims[:0])
		for _, v := range victims {
			var vk int
			fmt.Sscan(v.owner.key, &vk)
			delete(nodes, vk)
		}
	}
	var held int64
	for _, n := range nodes {
		held += n.size
	}
	if held != p.bytes() || held > capacity {
		panic(fmt.Sprintf("policy holds %d bytes, its nodes %d, capacity %d", p.bytes(), held, capacity))
	}
	return float64(hit) / float64(all)
}

// replayLRU returns the byte hit ratio of an LRU cache by bytes on tr.
func replayLRU(tr trace, capacity int64) float64 {
	l := list.New()
	elems := make(map[int]*list.Element)
	var used, hit, all int64
	for _, k := range tr.keys {
		all += tr.sizes[k]
		if e, ok := elems[k]; ok {
			hit += tr.sizes[k]
			l.MoveToFront(e)
			continue
		}
		elems[k] = l.PushFront(k)
		used += tr.sizes[k]
		for used > capacity {
			e := l.Back()
			v := e.Value.(int)
			l.Remove(e)
			delete(elems, v)
			used -= tr.sizes[v]
		}
	}
	return float64(hit) / float64(all)
}

// TestPolicyBeatsLRU replays Zipf traces over variable sizes through the
// eviction policy alone (no files) and through LRU, at several cache
// sizes: S3-FIFO's byte hit ratio must beat LRU's clearly, as in the
// S3-FIFO paper.
func TestPolicyBeatsLRU(t *testing.T) {
	requests := 400_000
	if testing.Short() || raceEnabled {
		requests = 100_000
	}
	for _, alpha := range []float64{0.8, 1.0} {
		tr := zipfTrace(50_000, requests, alpha, 42)
		for _, frac := range []float64{0.01, 0.05, 0.1} {
			t.Run(fmt.Sprintf("alpha=%.1f/cache=%.0f%%", alpha, frac*100), func(t *testing.T) {
				capacity := int64(float64(tr.total) * frac)
				s3 := replayS3FIFO(tr, capacity, 1)
				s3two := replayS3FIFO(tr, capacity, 2)
				lru := replayLRU(tr, capacity)
				t.Logf("byte hit ratio: S3-FIFO %.4f (promote at 2 hits: %.4f), LRU %.4f: %+.1f%%",
					s3, s3two, lru, 100*(s3-lru)/lru)
				if s3 < lru*1.02 {
					t.Errorf("S3-FIFO %.4f does not beat LRU %.4f by 2%%", s3, lru)
				}
			})
		}
	}
}

// TestPolicyBasics checks the queues on a tiny cache: new entries enter
// the small queue, one hit promotes, the ghost sends a returning key
// straight to main, bytes never exceed the capacity, remove forgets.
func TestPolicyBasics(t *testing.T) {
	p := newPolicy(100 * blockSize)
	mk := func(k uint64) *node { return &node{size: 10 * blockSize, hash: k} }
	var victims []*node
	nodes := make([]*node, 30)
	for i := range 12 {
		nodes[i] = mk(uint64(i))
		victims = p.add(nodes[i], 0, victims)
		if i == 0 {
			nodes[i].hit() // hit while in the small queue: promoted
		}
		if p.bytes() > p.capacity {
			t.Fatalf("%d bytes over the capacity", p.bytes())
		}
	}
	if nodes[0].q != inMain {
		t.Errorf("hit entry in queue %d, want main", nodes[0].q)
	}
	if len(victims) != 2 || victims[0] != nodes[1] || victims[1] != nodes[2] {
		t.Fatalf("victims = %v", victims)
	}
	back := mk(1) // evicted once: in the ghost queue
	p.add(back, 0, nil)
	if back.q != inMain {
		t.Errorf("key back from the ghost queue in queue %d, want main", back.q)
	}
	before := p.bytes()
	p.remove(nodes[5])
	if p.bytes() != before-10*blockSize || nodes[5].q != inNone {
		t.Error("remove did not take the entry out")
	}
	p.remove(nodes[5]) // twice is harmless
	// An entry hit in the small queue is promoted, unless it expired.
	for _, expires := range []int64{0, 5} {
		p := newPolicy(100 * blockSize)
		first := &node{size: blockSize, hash: 99, expires: expires}
		p.add(first, 0, nil)
		first.hit()
		var victims []*node
		for i := range 11 {
			victims = p.add(mk(uint64(i)), 10, victims)
		}
		evicted := len(victims) > 0 && victims[0] == first
		if evicted != (expires != 0) {
			t.Errorf("expires %d: evicted = %v (queue %d)", expires, evicted, first.q)
		}
		if _, ghost := p.ghost.index[99]; ghost {
			t.Errorf("expires %d: a hit or expired entry in the ghost queue", expires)
		}
	}
}
