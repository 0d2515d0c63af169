// Package buildinfo says which binary is running: the version stamped at
// build time, or else the module version, and the commit a build from a
// clone was made of (Go records vcs.revision when it builds inside a Git
// work tree). `outpost version`, the PoP's /stats and its
// outpost_build_info metric all read it here, so they never disagree.
package buildinfo

import (
	"fmt"
	"regexp"
	"runtime/debug"
	"sync"

	"github.com/outpost-cdn/outpost/popapi"
)

// Version is the release, set at build time with
// -ldflags "-X github.com/outpost-cdn/outpost/buildinfo.Version=v1.2.3"
// (cmd/outpost also copies its main.version here); "" means the module
// version, or "dev".
var Version string

var (
	once sync.Once
	info popapi.Build
)

// Read returns the running binary's build. It is read once: the first
// call fixes Version's value.
func Read() popapi.Build {
	once.Do(func() {
		bi, ok := debug.ReadBuildInfo()
		info = fromBuildInfo(Version, bi, ok)
	})
	return info
}

// pseudoRE matches the pseudo-versions Go gives a build from a work tree
// (v0.0.0-20261206091108-1e86cdc8af0e+dirty): the commit says more, and
// Revision has it.
var pseudoRE = regexp.MustCompile(`-(0\.)?\d{14}-[0-9a-f]{12}(\+dirty)?$|\+dirty$`)

// fromBuildInfo is Read's rule: the stamped version first, then the
// module's own (a go install of a tagged release), then "dev".
func fromBuildInfo(stamped string, bi *debug.BuildInfo, ok bool) popapi.Build {
	b := popapi.Build{Version: stamped}
	if !ok {
		if b.Version == "" {
			b.Version = "dev"
		}
		return b
	}
	b.GoVersion = bi.GoVersion
	if v := bi.Main.Version; b.Version == "" && v != "" && v != "(devel)" && !pseudoRE.MatchString(v) {
		b.Version = v
	}
	if b.Version == "" {
		b.Version = "dev"
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

// String is the one-line form `outpost version` prints:
// "v1.2.3 (0123456789ab) go1.26.8", "dev (0123456789ab-dirty) go1.26.8".
func String(b popapi.Build) string {
	out := b.Version
	if b.Revision != "" {
		dirty := ""
		if b.Modified {
			dirty = "-dirty"
		}
		out += fmt.Sprintf(" (%.12s%s)", b.Revision, dirty)
	}
	if b.GoVersion != "" {
		out += " " + b.GoVersion
	}
	return out
}
