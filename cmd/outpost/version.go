package main

import (
	"fmt"
	"io"
	"runtime/debug"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3";
// otherwise the module version or VCS revision from the build info is used.
var version = ""

func runVersion(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("version", "", stdout, stderr)
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "outpost", versionString())
	return nil
}

func versionString() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return orDev(version)
	}
	v := version
	if v == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
		v = info.Main.Version
	}
	var rev, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = "-dirty"
			}
		}
	}
	out := orDev(v)
	if rev != "" {
		out += fmt.Sprintf(" (%.12s%s)", rev, modified)
	}
	return out + " " + info.GoVersion
}

func orDev(v string) string {
	if v == "" {
		return "dev"
	}
	return v
}
