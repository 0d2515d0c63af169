package pop

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/outpost-cdn/outpost/buildinfo"
	"github.com/outpost-cdn/outpost/config"
	"github.com/outpost-cdn/outpost/popapi"
)

// TestReloadPending: a reload that changes restart-only settings says
// which, and which version's values still run, in /stats and /metrics;
// a reload back to the running values clears it.
func TestReloadPending(t *testing.T) {
	o := newTestOrigin(t, cacheable("x"))
	base := fmt.Sprintf(testConfig, o.URL, "0s")
	tp := startPoPConfig(t, base)
	started := tp.Stats().ConfigVersion
	if p := tp.Stats().Pending; p != nil {
		t.Fatalf("pending at start: %+v", p)
	}
	parse := func(text string) *config.Config {
		t.Helper()
		cfg, err := config.Parse("next.yaml", []byte(text))
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	next := parse(strings.NewReplacer("cache_size: 64MiB", "cache_size: 128MiB", "listen: 127.0.0.1:0", "listen: 127.0.0.1:1").Replace(base))
	if err := tp.Reload(next); err != nil {
		t.Fatal(err)
	}
	var s popapi.Stats
	if err := json.Unmarshal([]byte(tp.adminGet(t, "/stats")), &s); err != nil {
		t.Fatal(err)
	}
	if s.ConfigVersion != next.Version {
		t.Errorf("config_version %s, want the reloaded %s", s.ConfigVersion, next.Version)
	}
	if s.Pending == nil || s.Pending.RunningVersion != started || !slices.Equal(s.Pending.Settings, []string{"listen", "cache_size"}) {
		t.Errorf("config_pending_restart %+v, want listen and cache_size of %s", s.Pending, started)
	}
	if s.Build == nil || s.Build.Version == "" {
		t.Errorf("build %+v", s.Build)
	}
	m := tp.adminGet(t, "/metrics")
	for _, want := range []string{
		fmt.Sprintf(`outpost_pop_config_info{running_version=%q,version=%q} 1`, started, next.Version),
		`outpost_pop_config_pending_restart{setting="cache_size"} 1`,
		`outpost_pop_config_pending_restart{setting="listen"} 1`,
		`outpost_pop_config_reloads_total{result="applied"} 1`,
		fmt.Sprintf(`outpost_build_info{go_version=%q,modified=%q,revision=%q,version=%q} 1`,
			buildinfo.Read().GoVersion, fmt.Sprint(buildinfo.Read().Modified), buildinfo.Read().Revision, buildinfo.Read().Version),
	} {
		if !strings.Contains(m, want+"\n") {
			t.Errorf("metrics lack %s:\n%s", want, grepLines(m, "config"))
		}
	}

	if err := tp.Reload(parse(base)); err != nil {
		t.Fatal(err)
	}
	if p := tp.Stats().Pending; p != nil {
		t.Errorf("back to the running values: pending %+v", p)
	}
	if err := tp.Reload(parse(strings.Replace(base, "name: test", "name: other", 1))); err == nil {
		t.Fatal("a file without this PoP was applied")
	}
	if m := tp.adminGet(t, "/metrics"); !strings.Contains(m, `outpost_pop_config_reloads_total{result="refused"} 1`+"\n") {
		t.Errorf("a refused reload is not counted:\n%s", grepLines(m, "reloads"))
	}
}
