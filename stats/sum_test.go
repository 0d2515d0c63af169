package stats

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/outpost-cdn/outpost/popapi"
)

// TestFromStatsSum checks that FromStats keeps what a PoP served and that
// Sum adds up only the PoPs that answered, with ratios from the sums.
func TestFromStatsSum(t *testing.T) {
	doc := func(name string, req, hits uint64) popapi.Stats {
		s := popapi.Stats{PoP: name, ConfigVersion: "v-" + name, Draining: name == "iad"}
		s.Requests, s.Hits = req, hits
		s.Services = map[string]popapi.ServiceStats{"demo": {Figures: s.Figures}}
		return s
	}
	prg := FromStats("prg", "bus:outpost.stats", json.RawMessage(`{"pop":"prg"}`), doc("prg", 100, 90))
	if prg.Name != "prg" || prg.Admin != "bus:outpost.stats" || string(prg.Raw) != `{"pop":"prg"}` ||
		prg.ConfigVersion != "v-prg" || prg.Draining || prg.Requests != 100 || prg.Services["demo"].Hits != 90 {
		t.Fatalf("FromStats = %+v", prg)
	}
	tests := []struct {
		name            string
		pops            []PoP
		requests, hits  uint64
		ratio, demoRate float64
	}{
		{"two PoPs: the ratio of the sums", []PoP{prg, FromStats("iad", "", nil, doc("iad", 300, 30))}, 400, 120, 0.3, 0.3},
		{"a PoP that did not answer is left out", []PoP{prg, {Name: "nrt", Err: errors.New("no answer"), Figures: popapi.Figures{Requests: 1000}}}, 100, 90, 0.9, 0.9},
		{"no PoP answered", []PoP{{Name: "nrt", Err: errors.New("no answer")}}, 0, 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Report{PoPs: tt.pops}
			r.Sum()
			r.Sum() // a second Sum gives the same report
			if r.Total.Requests != tt.requests || r.Total.Hits != tt.hits || r.Total.HitRatio != tt.ratio {
				t.Errorf("total %d requests %d hits ratio %v, want %d %d %v", r.Total.Requests, r.Total.Hits, r.Total.HitRatio, tt.requests, tt.hits, tt.ratio)
			}
			if got := r.Services["demo"].HitRatio; got != tt.demoRate {
				t.Errorf("demo's hit ratio %v, want %v", got, tt.demoRate)
			}
		})
	}
}
