package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"

	"github.com/outpost-cdn/outpost/config"
	"github.com/outpost-cdn/outpost/dnsgeo"
)

// runDNSExplain is `outpost dns explain`: which PoP a client gets and why,
// from the file alone. It does not probe the PoPs, so every PoP counts as
// healthy; a running server's /explain uses its probes.
func runDNSExplain(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("dns explain", "--config FILE [--type A|AAAA] [--json] IP|PREFIX", stdout, stderr)
	configPath := fs.String("config", "", "the CDN's YAML file, with a dns section (required)")
	qtype := fs.String("type", "A", "the record type answered: A or AAAA")
	asJSON := fs.Bool("json", false, "print the explanation as JSON (the document of the admin /explain)")
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if *configPath == "" || fs.NArg() != 1 {
		fs.Usage()
		return errUsage
	}
	q, err := dnsgeo.ParseClient(fs.Arg(0))
	if err != nil {
		return err
	}
	if q.Type, err = dnsgeo.ParseType(*qtype); err != nil {
		return err
	}
	cfg, err := config.Load(*configPath)
	if err != nil {
		return err
	}
	srv, err := dnsgeo.New(cfg, dnsgeo.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	defer srv.Close()
	e := srv.Explain(q, false)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(e)
	}
	if err := e.WriteText(stdout); err != nil {
		return fmt.Errorf("writing: %w", err)
	}
	return nil
}
