package config

import (
	"fmt"
	"testing"
)

// TestSliceDefaults checks cache.slice's defaults: on for objects found
// too large, 4 MiB slices or max_object when smaller, off without a word
// when max_object is too small to slice (an explicit enabled is an error,
// see testdata/errors), and probe only when asked.
func TestSliceDefaults(t *testing.T) {
	tests := []struct {
		name  string
		cache string
		want  SlicePolicy
	}{
		{"no cache section", "", SlicePolicy{Enabled: true, Size: 4 << 20}},
		{"max_object below 4MiB", ", cache: {max_object: 1MiB}", SlicePolicy{Enabled: true, Size: 1 << 20}},
		{"max_object too small to slice", ", cache: {max_object: 32KiB}", SlicePolicy{}},
		{"turned off", ", cache: {slice: {enabled: false}}", SlicePolicy{}},
		{"probe", ", cache: {slice: {probe: true, size: 1MiB}}", SlicePolicy{Enabled: true, Probe: true, Size: 1 << 20}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := fmt.Sprintf(`services:
  - {name: demo, hostnames: [a.example], origin: {servers: [{url: "http://o"}]}%s}
pops:
  - {name: prg, location: {lat: 1, lon: 2}, listen: ":8081", admin: ":9081"}
`, tt.cache)
			c, err := Parse("t.yaml", []byte(file))
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Services[0].Cache.Slice; got != tt.want {
				t.Errorf("slice = %+v, want %+v", got, tt.want)
			}
		})
	}
}
