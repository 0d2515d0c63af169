package main

import (
	"fmt"
	"io"

	"github.com/outpost-cdn/outpost/dnsgeo/geodb"
)

func runGeoDB(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "build" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
			geodbUsage(stdout)
			return nil
		}
		geodbUsage(stderr)
		return errUsage
	}
	fs := newFlagSet("geodb build", "[--asn] NETWORKS.csv OUT.mmdb", stdout, stderr)
	asn := fs.Bool("asn", false, "the CSV has cidr,asn[,org] rows: build an ASN database (GeoLite2-ASN layout) for dns.asn")
	if err := parseFlags(fs, args[1:], stdout); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		fs.Usage()
		return errUsage
	}
	kind := geodb.City
	if *asn {
		kind = geodb.ASN
	}
	n, err := geodb.BuildFile(fs.Arg(0), fs.Arg(1), kind)
	if err != nil {
		return err
	}
	noun := "networks"
	if n == 1 {
		noun = "network"
	}
	fmt.Fprintf(stdout, "%s: %d %s (%s database)\n", fs.Arg(1), n, noun, kind)
	return nil
}

func geodbUsage(w io.Writer) {
	fmt.Fprintln(w, "Usage: outpost geodb build [--asn] NETWORKS.csv OUT.mmdb")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Builds a MaxMind-format database for dns.geoip from rows cidr,lat,lon[,country]")
	fmt.Fprintln(w, "(GeoIP2-City layout), or with --asn for dns.asn from rows cidr,asn[,org]")
	fmt.Fprintln(w, "(GeoLite2-ASN layout). A header line is optional; '#' starts a comment line.")
}
