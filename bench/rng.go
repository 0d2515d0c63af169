package bench

// golden is the SplitMix64 increment.
const golden = 0x9e3779b97f4a7c15

// splitmix is the SplitMix64 output function of the state x+golden.
func splitmix(x uint64) uint64 {
	x += golden
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// Streams keep the draws of different purposes independent for the same
// request index.
const (
	streamZipf uint64 = iota + 1
	streamOneHit
	streamShift
	streamClient
)

// rng is a SplitMix64 sequence. Workloads seed one per request from (seed,
// stream, request index), so the k-th request is the same whichever
// goroutine draws it and in whatever order.
type rng struct{ state uint64 }

// newRNG returns the sequence for request k of a stream under seed.
func newRNG(seed, stream, k uint64) rng {
	return rng{state: splitmix(splitmix(seed^(stream<<56)) + k*golden)}
}

func (r *rng) next() uint64 {
	r.state += golden
	return splitmix(r.state)
}

// float returns a uniform number in [0, 1).
func (r *rng) float() float64 { return float64(r.next()>>11) / (1 << 53) }
