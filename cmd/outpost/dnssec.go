package main

import (
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"

	"github.com/outpost-cdn/outpost/dnsgeo/dnssec"
)

func runDNSSEC(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "keygen" && args[0] != "ds") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
			dnssecUsage(stdout)
			return nil
		}
		dnssecUsage(stderr)
		return errUsage
	}
	if args[0] == "ds" {
		fs := newFlagSet("dnssec ds", "KEYFILE...", stdout, stderr)
		if err := parseFlags(fs, args[1:], stdout); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			fs.Usage()
			return errUsage
		}
		for _, f := range fs.Args() {
			k, err := dnssec.Load(f, true)
			if err != nil {
				return err
			}
			fmt.Fprintln(stdout, k.DS())
		}
		return nil
	}
	fs := newFlagSet("dnssec keygen", "--zone ZONE [--algorithm ecdsap256sha256|ed25519] [--type csk|ksk-zsk|ksk|zsk] [--dir DIR]", stdout, stderr)
	zone := fs.String("zone", "", "the zone the keys sign, as the file's zone key (required)")
	alg := fs.String("algorithm", "ecdsap256sha256", "ecdsap256sha256 (13) or ed25519 (15)")
	kind := fs.String("type", "csk", "csk: one key signs all; ksk-zsk: a key-signing and a zone-signing key; ksk or zsk: one more, for a rollover")
	dir := fs.String("dir", ".", "where to write the Kzone.+alg+tag.key and .private files")
	if err := parseFlags(fs, args[1:], stdout); err != nil {
		return err
	}
	a, ok := dnssec.Algorithms[strings.ToLower(*alg)]
	if *zone == "" || fs.NArg() > 0 || !ok || !slices.Contains([]string{"csk", "ksk-zsk", "ksk", "zsk"}, *kind) {
		fs.Usage()
		return errUsage
	}
	var seps []bool
	switch *kind {
	case "csk", "ksk":
		seps = []bool{true}
	case "zsk":
		seps = []bool{false}
	case "ksk-zsk":
		seps = []bool{true, false}
	}
	var files []string
	for _, sep := range seps {
		k, err := dnssec.Generate(*zone, a, sep)
		if err != nil {
			return err
		}
		file, err := k.WriteFiles(*dir)
		if err != nil {
			return err
		}
		role := "ZSK"
		switch {
		case sep && *kind == "csk":
			role = "CSK"
		case sep:
			role = "KSK"
		}
		fmt.Fprintf(stdout, "%s %s (key tag %d, %s)\n", role, file, k.DNSKEY.KeyTag(), strings.ToLower(*alg))
		if sep {
			fmt.Fprintf(stdout, "  DS for the parent zone: %s\n", k.DS())
		}
		files = append(files, filepath.Base(file))
	}
	fmt.Fprintln(stdout, "In the dns section (paths relative to the file):")
	fmt.Fprintln(stdout, "  dnssec:")
	fmt.Fprintln(stdout, "    keys:")
	for _, f := range files {
		fmt.Fprintf(stdout, "      - %s\n", f)
	}
	return nil
}

func dnssecUsage(w io.Writer) {
	fmt.Fprintln(w, "Usage: outpost dnssec keygen --zone ZONE [--algorithm ecdsap256sha256|ed25519] [--type csk|ksk-zsk|ksk|zsk] [--dir DIR]")
	fmt.Fprintln(w, "       outpost dnssec ds KEYFILE...")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "keygen writes DNSSEC keys for dns.dnssec.keys (BIND-style Kzone.+alg+tag.key and")
	fmt.Fprintln(w, ".private files) and prints the DS record to give the parent zone for each")
	fmt.Fprintln(w, "key-signing key. ds prints the DS record of existing keys. See docs/dnssec.md.")
}
