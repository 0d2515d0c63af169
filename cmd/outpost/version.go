package main

import (
	"fmt"
	"io"

	"github.com/outpost-cdn/outpost/buildinfo"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3";
// main copies it to buildinfo.Version, which the PoP's /stats and
// outpost_build_info report too. Otherwise the module version, or "dev"
// with the commit of a build from a clone, is used.
var version = ""

func runVersion(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("version", "", stdout, stderr)
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "outpost", versionString())
	return nil
}

// versionString is what `outpost version` prints: the version, the commit
// (12 digits, -dirty for a modified tree) and the Go version.
func versionString() string {
	return buildinfo.String(buildinfo.Read())
}
