package bench

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/outpost-cdn/outpost/origin/synthetic"
)

// harmonic is the generalized harmonic number H(n, s) = Σ 1/k^s.
func harmonic(n uint64, s float64) float64 {
	var h float64
	for k := n; k >= 1; k-- {
		h += math.Pow(float64(k), -s)
	}
	return h
}

// objectOf returns the object number in a Zipf path /obj/<n>.
func objectOf(t *testing.T, path []byte) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(strings.TrimPrefix(string(path), "/obj/"), 10, 64)
	if err != nil {
		t.Fatalf("path %q: %v", path, err)
	}
	return n
}

// TestZipfShape checks the sampler against theory: the share of rank 1 is
// 1/H(n,s), and rank 1 is 2^s times as frequent as rank 2.
func TestZipfShape(t *testing.T) {
	const draws = 400_000
	for _, tc := range []struct {
		n uint64
		s float64
	}{
		{1000, 1.0}, {1000, 0.7}, {10_000, 1.2}, {50, 0.5}, {1, 1},
	} {
		t.Run(fmt.Sprintf("n=%d s=%g", tc.n, tc.s), func(t *testing.T) {
			z, err := NewZipf(ZipfOptions{Objects: tc.n, S: tc.s, Seed: 42})
			if err != nil {
				t.Fatal(err)
			}
			counts := make(map[uint64]int)
			var buf []byte
			for k := range uint64(draws) {
				buf, _ = z.Next(buf[:0], k, 0)
				obj := objectOf(t, buf)
				if obj < 1 || obj > tc.n {
					t.Fatalf("object %d outside 1..%d", obj, tc.n)
				}
				counts[obj]++
			}
			want := 1 / harmonic(tc.n, tc.s)
			got := float64(counts[1]) / draws
			// Five standard deviations of a binomial share.
			tol := 5 * math.Sqrt(want*(1-want)/draws)
			if math.Abs(got-want) > tol+1e-12 {
				t.Errorf("rank 1 share %.4f, want %.4f ± %.4f", got, want, tol)
			}
			if tc.n >= 2 {
				r := float64(counts[1]) / float64(counts[2])
				if want := math.Pow(2, tc.s); math.Abs(r-want)/want > 0.05 {
					t.Errorf("rank 1 / rank 2 = %.3f, want %.3f ± 5%%", r, want)
				}
			}
		})
	}
}

// TestZipfDeterminism checks that a seed fixes the sequence, whatever the
// order requests are drawn in, and that another seed changes it.
func TestZipfDeterminism(t *testing.T) {
	seq := func(seed uint64, reverse bool) []string {
		z, err := NewZipf(ZipfOptions{Objects: 10_000, Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		out := make([]string, 1000)
		for i := range out {
			k := uint64(i)
			if reverse {
				k = uint64(len(out) - 1 - i)
			}
			p, _ := z.Next(nil, k, 0)
			out[k] = string(p)
		}
		return out
	}
	a, b, c := seq(7, false), seq(7, true), seq(8, false)
	if strings.Join(a, " ") != strings.Join(b, " ") {
		t.Error("the same seed gave different sequences")
	}
	same := 0
	for i := range a {
		if a[i] == c[i] {
			same++
		}
	}
	if same > len(a)/2 {
		t.Errorf("seeds 7 and 8 agree on %d of %d requests", same, len(a))
	}
}

// TestZipfShift checks that popularity moves: each epoch maps ranks to
// objects through a new permutation, so the most popular object changes,
// while the shape stays the same.
func TestZipfShift(t *testing.T) {
	const every = 50_000
	for _, tc := range []struct {
		name string
		opts ZipfOptions
		at   func(k uint64) time.Duration
	}{
		{"every K requests", ZipfOptions{Objects: 1000, Seed: 3, ShiftEvery: every}, func(uint64) time.Duration { return 0 }},
		{"every T seconds", ZipfOptions{Objects: 1000, Seed: 3, ShiftPeriod: time.Minute},
			func(k uint64) time.Duration { return time.Duration(k/every) * time.Minute }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			z, err := NewZipf(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			top := make([]uint64, 3)
			for epoch := range top {
				counts := map[uint64]int{}
				for i := range uint64(every) {
					k := uint64(epoch)*every + i
					p, _ := z.Next(nil, k, tc.at(k))
					counts[objectOf(t, p)]++
				}
				best, bestN := uint64(0), 0
				for obj, n := range counts {
					if n > bestN {
						best, bestN = obj, n
					}
				}
				top[epoch] = best
				if share, want := float64(bestN)/every, 1/harmonic(1000, 1); math.Abs(share-want) > 0.01 {
					t.Errorf("epoch %d: top share %.3f, want %.3f", epoch, share, want)
				}
			}
			if top[0] != 1 {
				t.Errorf("before the first shift the top object is %d, want 1", top[0])
			}
			if top[0] == top[1] || top[1] == top[2] {
				t.Errorf("top objects by epoch %v: the shift did not move popularity", top)
			}
		})
	}
}

// TestPermutation checks that the shift's mapping is a bijection.
func TestPermutation(t *testing.T) {
	for _, n := range []uint64{1, 2, 3, 7, 100, 1000, 4097} {
		p := newPermutation(n, 99)
		seen := make([]bool, n)
		moved := 0
		for x := range n {
			y := p.apply(x)
			if y >= n || seen[y] {
				t.Fatalf("n=%d: %d → %d is out of range or taken", n, x, y)
			}
			seen[y] = true
			if y != x {
				moved++
			}
		}
		if n >= 100 && moved < int(n)/2 {
			t.Errorf("n=%d: only %d of %d moved", n, moved, n)
		}
	}
}

// TestOneHitWonders checks the fraction of never-repeated ids and that
// they never repeat.
func TestOneHitWonders(t *testing.T) {
	for _, frac := range []float64{0, 0.1, 0.3, 1} {
		t.Run(fmt.Sprint(frac), func(t *testing.T) {
			z, err := NewZipf(ZipfOptions{Objects: 100, Seed: 5})
			if err != nil {
				t.Fatal(err)
			}
			w, err := WithOneHitWonders(z, OneHitOptions{Fraction: frac, Seed: 5, Size: 2048})
			if err != nil {
				t.Fatal(err)
			}
			const n = 100_000
			seen := map[string]bool{}
			ones := 0
			for k := range uint64(n) {
				p, _ := w.Next(nil, k, 0)
				if s := string(p); strings.HasPrefix(s, "/obj/u") {
					ones++
					if seen[s] {
						t.Fatalf("one-hit wonder %s repeated", s)
					}
					seen[s] = true
					if !strings.HasSuffix(s, "?size=2048") {
						t.Fatalf("one-hit wonder %s lacks the size", s)
					}
				}
			}
			got := float64(ones) / n
			tol := 5*math.Sqrt(frac*(1-frac)/n) + 1e-9
			if math.Abs(got-frac) > tol {
				t.Errorf("one-hit share %.4f, want %.4f ± %.4f", got, frac, tol)
			}
		})
	}
}

// TestTemplates checks path templates and their errors.
func TestTemplates(t *testing.T) {
	for _, tc := range []struct {
		tmpl    string
		size    int64
		want    string // for object 7
		wantErr string
	}{
		{"", 0, "/obj/7", ""},
		{"", 1024, "/obj/7?size=1024", ""},
		{"/v/{id}.bin", 0, "/v/7.bin", ""},
		{"/obj/{id}?size={size}", 0, "/obj/7?size=" + strconv.FormatInt(sizeOf7(), 10), ""},
		{"/obj/{id}", 1024, "", "needs {size}"},
		{"obj/{id}", 0, "", "does not start with /"},
		{"/obj/x", 0, "", "does not contain {id}"},
		{"/obj/{idx}", 0, "", "unknown placeholder"},
		{"/obj/{id", 0, "", "unclosed"},
		{"/obj/{id} x", 0, "", "space"},
	} {
		t.Run(tc.tmpl, func(t *testing.T) {
			tm, err := pathTemplate(tc.tmpl, tc.size)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			size := tc.size
			if size == 0 {
				size = -1
			}
			if got := string(tm.expand(nil, []byte("7"), size)); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func sizeOf7() int64 { return synthetic.SizeOf("7") }
