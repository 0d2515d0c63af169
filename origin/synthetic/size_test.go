package synthetic

import (
	"fmt"
	"slices"
	"strconv"
	"testing"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64 // -1: an error
	}{
		{"0", 0},
		{"1", 1},
		{"512", 512},
		{"512b", 512},
		{"10k", 10240},
		{"10K", 10240},
		{"1m", 1 << 20},
		{"1g", 1 << 30},
		{"64KiB", 64 << 10},
		{"64kib", 64 << 10},
		{"2MiB", 2 << 20},
		{"1GiB", 1 << 30},
		{"1KB", 1000},
		{"3mb", 3_000_000},
		{"1GB", 1_000_000_000},
		{"1073741824", 1 << 30},
		{"007", 7},
		// Bad values.
		{"", -1},
		{"k", -1},
		{"-1", -1},
		{"+1", -1},
		{"1.5k", -1},
		{" 1", -1},
		{"1 k", -1},
		{"1x", -1},
		{"1kk", -1},
		{"1t", -1},
		{"0x10", -1},
		{"1073741825", -1},           // one byte over MaxSize
		{"2g", -1},                   // over MaxSize
		{"1025m", -1},                // over MaxSize
		{"99999999999999999999", -1}, // over uint64
		{"18014398509481984k", -1},   // overflows uint64 when multiplied
		{"１０", -1},                   // fullwidth digits
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSize(tt.in)
			if tt.want < 0 {
				if err == nil {
					t.Fatalf("ParseSize(%q) = %d, want an error", tt.in, got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestSizeOfIsHeavyTailed(t *testing.T) {
	const n = 10_000
	sizes := make([]int64, n)
	var sum, overMiB, atMin, atMax int64
	for i := range sizes {
		id := "obj-" + strconv.Itoa(i)
		s := SizeOf(id)
		if SizeOf(id) != s {
			t.Fatalf("SizeOf(%q) is not deterministic", id)
		}
		if s < sizeMin || s > sizeMax {
			t.Fatalf("SizeOf(%q) = %d, outside %d..%d", id, s, sizeMin, sizeMax)
		}
		sizes[i] = s
		sum += s
		switch {
		case s > 1<<20:
			overMiB++
		case s == sizeMin:
			atMin++
		}
		if s == sizeMax {
			atMax++
		}
	}
	slices.Sort(sizes)
	median := sizes[n/2]
	mean := sum / n
	t.Logf("median %d, mean %d, p99 %d, max %d, >1MiB %d, at 64B %d, at 10MiB %d",
		median, mean, sizes[n*99/100], sizes[n-1], overMiB, atMin, atMax)
	// Lognormal(ln 20KiB, 1.5): the median is 20 KiB, the mean about
	// 61 KiB, and P(size > 1 MiB) = P(Z > 2.62) ≈ 0.44 %. The bands are
	// several standard errors wide.
	if median < 17<<10 || median > 24<<10 {
		t.Errorf("median %d, want about 20 KiB", median)
	}
	if mean < 45<<10 || mean > 85<<10 {
		t.Errorf("mean %d, want about 61 KiB", mean)
	}
	if overMiB < 15 || overMiB > 90 {
		t.Errorf("%d of %d sizes over 1 MiB, want about 44", overMiB, n)
	}
}

func TestSizeParameter(t *testing.T) {
	ts := start(t, Options{})
	tests := []struct {
		name   string
		method string
		query  string
		status int
		length int64 // Content-Length wanted for 200
	}{
		{"bytes", "GET", "?size=1000", 200, 1000},
		{"binary k", "GET", "?size=10k", 200, 10240},
		{"KiB", "GET", "?size=3KiB", 200, 3072},
		{"MiB", "GET", "?size=1MiB", 200, 1 << 20},
		{"zero", "GET", "?size=0", 200, 0},
		{"the cap, by HEAD", "HEAD", "?size=1g", 200, 1 << 30},
		{"default is SizeOf", "GET", "", 200, SizeOf("sized")},
		{"other parameters ignored", "GET", "?size=5&v=2", 200, 5},
		{"over the cap", "GET", "?size=2g", 400, 0},
		{"negative", "GET", "?size=-1", 400, 0},
		{"fraction", "GET", "?size=1.5k", 400, 0},
		{"unknown unit", "GET", "?size=1q", 400, 0},
		{"empty", "GET", "?size=", 400, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := ts.do(t, tt.method, "/obj/sized"+tt.query, nil)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			if tt.status != 200 {
				if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
					t.Errorf("400 has Cache-Control %q, want no-store", cc)
				}
				return
			}
			if resp.ContentLength != tt.length {
				t.Errorf("Content-Length %d, want %d", resp.ContentLength, tt.length)
			}
			if tt.method == "GET" {
				if int64(len(body)) != tt.length {
					t.Errorf("got %d bytes, want %d", len(body), tt.length)
				}
				if err := Verify("sized", body); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

func ExampleSizeOf() {
	fmt.Println(SizeOf("a"), SizeOf("images/cat.jpg"))
	// Output: 26965 34794
}
