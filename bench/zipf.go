package bench

import (
	"fmt"
	"math"
	"math/bits"
)

// zipfSampler draws ranks 1..n with P(k) ∝ 1/k^s, for any s > 0, in O(1)
// time and memory, by rejection-inversion (W. Hörmann and G. Derflinger,
// "Rejection-inversion to generate variates from monotone discrete
// distributions", 1996), as Apache Commons RNG does. math/rand's Zipf needs
// s > 1; CDN popularity is usually measured between 0.6 and 1.2.
type zipfSampler struct {
	n           uint64
	s           float64
	hIntegralX1 float64
	hIntegralN  float64
	sThreshold  float64
	oneMinusS   float64
}

func newZipfSampler(n uint64, s float64) (*zipfSampler, error) {
	if n == 0 {
		return nil, fmt.Errorf("zipf: the number of objects must be at least 1")
	}
	if !(s > 0) || math.IsInf(s, 0) {
		return nil, fmt.Errorf("zipf: exponent %v must be a finite number > 0", s)
	}
	z := &zipfSampler{n: n, s: s, oneMinusS: 1 - s}
	z.hIntegralX1 = z.hIntegral(1.5) - 1
	z.hIntegralN = z.hIntegral(float64(n) + 0.5)
	z.sThreshold = 2 - z.hIntegralInverse(z.hIntegral(2.5)-z.h(2))
	return z, nil
}

// sample returns a rank in [1, n].
func (z *zipfSampler) sample(r *rng) uint64 {
	for {
		u := z.hIntegralN + r.float()*(z.hIntegralX1-z.hIntegralN)
		x := z.hIntegralInverse(u)
		kf := math.Floor(x + 0.5)
		k := uint64(1)
		switch {
		case kf < 1 || math.IsNaN(kf):
		case kf > float64(z.n):
			k = z.n
		default:
			k = uint64(kf)
		}
		if float64(k)-x <= z.sThreshold || u >= z.hIntegral(float64(k)+0.5)-z.h(float64(k)) {
			return k
		}
	}
}

// h is the density 1/x^s.
func (z *zipfSampler) h(x float64) float64 { return math.Exp(-z.s * math.Log(x)) }

// hIntegral is H(x) = (x^(1-s) - 1)/(1-s), or log x when s = 1.
func (z *zipfSampler) hIntegral(x float64) float64 {
	lx := math.Log(x)
	return helper2(z.oneMinusS*lx) * lx
}

// hIntegralInverse is the inverse of hIntegral.
func (z *zipfSampler) hIntegralInverse(x float64) float64 {
	t := x * z.oneMinusS
	if t < -1 {
		t = -1 // numerical safety near the pole
	}
	return math.Exp(helper1(t) * x)
}

// helper1 is log1p(x)/x, continuous at 0.
func helper1(x float64) float64 {
	if math.Abs(x) > 1e-8 {
		return math.Log1p(x) / x
	}
	return 1 - x*(0.5-x*(1.0/3-0.25*x))
}

// helper2 is expm1(x)/x, continuous at 0.
func helper2(x float64) float64 {
	if math.Abs(x) > 1e-8 {
		return math.Expm1(x) / x
	}
	return 1 + x*0.5*(1+x/3*(1+0.25*x))
}

// permutation is a keyed pseudo-random bijection of [0, n): a four-round
// Feistel network over the smallest even power of two ≥ n, walking the
// cycle until the value falls inside [0, n). Shifting popularity uses one
// per epoch to redraw which object has which rank.
type permutation struct {
	n        uint64
	halfBits uint
	mask     uint64
	keys     [4]uint64
}

func newPermutation(n, key uint64) permutation {
	b := uint(bits.Len64(n - 1))
	if b%2 == 1 {
		b++
	}
	if b == 0 {
		b = 2
	}
	p := permutation{n: n, halfBits: b / 2, mask: 1<<(b/2) - 1}
	for i := range p.keys {
		p.keys[i] = splitmix(key + uint64(i)*golden)
	}
	return p
}

// apply maps x in [0, n) to its image in [0, n).
func (p permutation) apply(x uint64) uint64 {
	for {
		l, r := x>>p.halfBits, x&p.mask
		for _, k := range p.keys {
			l, r = r, l^(splitmix(r^k)&p.mask)
		}
		x = l<<p.halfBits | r
		if x < p.n {
			return x
		}
	}
}
