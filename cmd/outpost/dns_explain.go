package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/outpost-cdn/outpost/config"
	"github.com/outpost-cdn/outpost/dnsgeo"
)

// runDNSExplain is `outpost dns explain`: which PoP a client gets and why,
// from the file alone (every PoP counts as healthy: nothing is probed), or
// with --server from a running DNS server's admin /explain, which knows
// its probes, the PoPs' control-plane states and its load shedding.
func runDNSExplain(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("dns explain", "--config FILE | --server ADMIN [--type A|AAAA] [--json] IP|PREFIX", stdout, stderr)
	configPath := fs.String("config", "", "the CDN's YAML file, with a dns section (or --server)")
	server := fs.String("server", "", "a running DNS server's admin address (host:port): explain as it answers now, with its probes, states and load shedding")
	qtype := fs.String("type", "A", "the record type answered: A or AAAA")
	asJSON := fs.Bool("json", false, "print the explanation as JSON (the document of the admin /explain)")
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if (*configPath == "") == (*server == "") || fs.NArg() != 1 {
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
	var e dnsgeo.Explanation
	if *server != "" {
		if e, err = explainFrom(*server, fs.Arg(0), *qtype); err != nil {
			return err
		}
	} else {
		cfg, err := config.Load(*configPath)
		if err != nil {
			return err
		}
		srv, err := dnsgeo.New(cfg, dnsgeo.Options{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			return err
		}
		defer srv.Close()
		e = srv.Explain(q, false)
	}
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

// explainFrom asks the DNS server whose admin listener is at addr.
func explainFrom(addr, client, qtype string) (dnsgeo.Explanation, error) {
	var e dnsgeo.Explanation
	u := url.URL{Scheme: "http", Host: addr, Path: "/explain", RawQuery: url.Values{"ip": {client}, "type": {qtype}}.Encode()}
	hc := &http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Get(u.String())
	if err != nil {
		return e, fmt.Errorf("asking %s: %w", addr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return e, fmt.Errorf("reading %s: %w", u.String(), err)
	}
	if resp.StatusCode != http.StatusOK {
		return e, fmt.Errorf("%s: %s: %s", u.String(), resp.Status, strings.TrimSpace(string(body)))
	}
	if err := json.Unmarshal(body, &e); err != nil {
		return e, fmt.Errorf("%s: not an explanation: %w", u.String(), err)
	}
	return e, nil
}
