package buildinfo

import (
	"runtime/debug"
	"testing"

	"github.com/outpost-cdn/outpost/popapi"
)

func TestFromBuildInfo(t *testing.T) {
	clone := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.modified", Value: "true"}}}
	tagged := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.4.0"}}
	pseudo := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20261206091108-1e86cdc8af0e+dirty"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "1e86cdc8af0e662bd2f8ae10bc667569d5c876d2"}, {Key: "vcs.modified", Value: "true"}}}
	tests := []struct {
		name    string
		stamped string
		bi      *debug.BuildInfo
		ok      bool
		want    popapi.Build
		line    string
	}{
		{"a build from a clone says its commit", "", clone, true,
			popapi.Build{Version: "dev", Revision: "0123456789abcdef0123", Modified: true, GoVersion: "go1.26.8"},
			"dev (0123456789ab-dirty) go1.26.8"},
		{"go build in a clone: the pseudo-version gives way to the commit", "", pseudo, true,
			popapi.Build{Version: "dev", Revision: "1e86cdc8af0e662bd2f8ae10bc667569d5c876d2", Modified: true, GoVersion: "go1.26.8"},
			"dev (1e86cdc8af0e-dirty) go1.26.8"},
		{"go install of a tag", "", tagged, true,
			popapi.Build{Version: "v1.4.0", GoVersion: "go1.26.8"}, "v1.4.0 go1.26.8"},
		{"a stamped version wins", "v2.0.0", tagged, true,
			popapi.Build{Version: "v2.0.0", GoVersion: "go1.26.8"}, "v2.0.0 go1.26.8"},
		{"no build info", "", nil, false, popapi.Build{Version: "dev"}, "dev"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := fromBuildInfo(tt.stamped, tt.bi, tt.ok)
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			if s := String(got); s != tt.line {
				t.Errorf("String = %q, want %q", s, tt.line)
			}
		})
	}
}
