// Package lab runs a whole CDN on this machine, in one process: the
// synthetic origin, the geo DNS server and the PoPs of one CDN file (by
// default the built-in copy of deploy/examples/lab.yaml), then a load run
// through DNS from simulated clients in several regions, and reports where
// each region was routed, how well the CDN cached and how each PoP warmed
// up (its figures sampled through the run); then it runs one workload
// twice on cold objects, without and with a shield PoP, and reports what
// reached the origin each time (report.go, warming.go, shield.go); then it
// tries the edge features the file turns on, compression, signed URLs and
// PROXY protocol, with a few requests each (edge.go). It is
// the quickest way to see Outpost do its job, and a smoke test of every
// role together.
package lab

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/outpost-cdn/outpost/bench"
	"github.com/outpost-cdn/outpost/config"
	"github.com/outpost-cdn/outpost/dnsgeo"
	"github.com/outpost-cdn/outpost/origin/synthetic"
	"github.com/outpost-cdn/outpost/pop"
)

// The built-in CDN: copies of deploy/examples/lab.yaml and the network
// map it names (a test keeps them equal).
//
//go:embed lab.yaml networks.csv
var builtin embed.FS

// DefaultRegions are the simulated client populations of the built-in
// lab: one in each documentation range of its network map.
var DefaultRegions = []string{
	"fra=198.51.100.0/24:1",
	"nyc=192.0.2.0/24:1",
	"osa=203.0.113.0/24:1",
}

// Options configure a lab run. Every field is optional.
type Options struct {
	// Config is a CDN file to run instead of the built-in one. It needs a
	// dns section, at least one service and one PoP.
	Config string
	// Regions are the client populations ("name=CIDR:weight"); nil means
	// DefaultRegions.
	Regions []string
	// Duration is the measured load window (default 8s), after Warmup
	// (default 2s).
	Duration, Warmup time.Duration
	// Connections is the number of virtual clients (default 24).
	Connections int
	// Rate, if > 0, runs the load open loop at that many requests/s.
	Rate float64
	// Objects and ZipfS shape the workload: Zipf(s) popularity over that
	// many objects of the synthetic origin (default 2000 and 1.0).
	Objects int
	ZipfS   float64
	// Seed makes the run reproducible (default 1).
	Seed uint64
	// Keep leaves the CDN running after the report, and prints commands to
	// try it by hand, until ctx is done.
	Keep bool
	// Report, if set, is the path of an HTML report to write; its
	// figures go to the same path with .json in place of the extension.
	Report string
	// NoShield skips the shield comparison: the same workload, on cold
	// objects, without and then with a shield PoP (ShieldRequests
	// requests each, default 6000; ShieldPoP, default the PoP nearest
	// the others).
	NoShield       bool
	ShieldRequests int64
	ShieldPoP      string
	// Logger receives the roles' logs; nil means warnings and errors to
	// stderr.
	Logger *slog.Logger
}

// Run starts the CDN, loads it, writes the report to out and stops
// everything. It returns an error if any part failed: a role that did not
// start or stopped with an error, or a load run with failed requests.
func Run(ctx context.Context, opts Options, out io.Writer) error {
	opts.defaults()
	cfg, cfgPath, cleanup, err := loadConfig(opts.Config)
	if err != nil {
		return err
	}
	defer cleanup()
	dc, err := cfg.DNSConfig()
	if err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	svc := cfg.Services[0]
	originAddr := svc.Origin.Servers[0].URL.Host
	fmt.Fprintf(out, "Outpost lab: %s — origin %s, DNS %s, %d PoPs\n", cfg.Path, originAddr, strings.Join(dc.Listen, " "), len(cfg.POPs))

	var pops []*pop.PoP
	defer func() {
		for _, p := range pops {
			p.Close()
		}
	}()
	for i := range cfg.POPs {
		// The lab lives on loopback for a run: a placeholder purge token
		// (say in a -config file copied from an example) only warns.
		p, err := pop.New(cfg, cfg.POPs[i].Name, pop.Options{Logger: opts.Logger, NoDrain: true, ShutdownGrace: 5 * time.Second, AllowPlaceholderToken: true})
		if err != nil {
			return fmt.Errorf("lab: %w", err)
		}
		pops = append(pops, p)
	}
	// Open every socket first, so a taken address is reported before
	// anything starts.
	assets := newAssetOrigin(cfg, originAddr) // edge.go
	socks, err := openSockets(ctx, cfg, dc, originAddr, assets, pops)
	if err != nil {
		return err
	}
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	roles := &roleSet{}
	defer func() {
		stop()
		roles.wait()
	}()

	origin, err := synthetic.New(synthetic.Options{Listen: originAddr, Logger: opts.Logger})
	if err != nil {
		socks.close()
		return fmt.Errorf("lab: origin: %w", err)
	}
	roles.start("origin", func() error { return origin.Serve(runCtx, socks.origin) })
	if assets != nil {
		roles.start("text origin", func() error { return assets.serve(runCtx, socks.assets) })
	}

	for i, p := range pops {
		ls := socks.pops[i]
		roles.start("pop "+p.Name(), func() error { return p.ServeListeners(runCtx, ls) })
	}

	dnsServer, err := dnsgeo.New(cfg, dnsgeo.Options{Logger: opts.Logger, ShutdownGrace: time.Second})
	if err != nil {
		socks.close()
		return fmt.Errorf("lab: %w", err)
	}
	roles.start("dns", func() error { return dnsServer.Serve(runCtx, socks.dns) })
	select {
	case <-dnsServer.Ready():
	case <-time.After(5 * time.Second):
		return errors.New("lab: the DNS server did not start")
	case err := <-roles.failed:
		return err
	}

	// The control plane: every PoP's agent and the DNS server on an
	// embedded bus; the load starts once the DNS server routes on the
	// PoPs' states.
	ctl, err := startBus(ctx, cfg, cfgPath, pops, dnsServer, opts.Logger)
	if err != nil {
		return err
	}
	defer ctl.close()
	if err := ctl.waitHealthy(ctx, dnsServer, 10*time.Second); err != nil {
		return err
	}

	// The warming curves: every PoP's figures sampled through the run.
	sampleCtx, stopSampling := context.WithCancel(ctx)
	smp := newSampler(pops)
	var sampling sync.WaitGroup
	sampling.Go(func() { smp.run(sampleCtx) })
	res, err := runLoad(ctx, cfg, dc, svc, originAddr, opts)
	stopSampling()
	sampling.Wait()
	if err != nil {
		return err
	}
	rep := newReport(cfg, res, pops, smp.warming(opts.Warmup))
	rep.writeText(out)
	busRes, err := ctl.measure(ctx, cfgPath, "http://"+serviceHost(cfg, svc)+"/obj/1")
	if err != nil {
		return err
	}
	busRes.write(out)
	if !opts.NoShield {
		if rep.Shield, err = compareShield(ctx, cfg, dc, originAddr, pops, opts); err != nil {
			return err
		}
		rep.Shield.write(out)
	}
	if rep.Edge, err = tryEdge(ctx, cfg, assets); err != nil {
		return err
	}
	rep.Edge.write(out)
	if opts.Report != "" {
		jsonPath, err := rep.write(opts.Report)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "\nHTML report: %s (its figures in JSON: %s)\n", opts.Report, jsonPath)
	}
	if opts.Keep {
		printTryIt(out, cfg, dc, svc, originAddr)
		select {
		case <-ctx.Done():
		case err := <-roles.failed:
			return err
		}
	}
	stop()
	if err := roles.wait(); err != nil {
		return err
	}
	if res.Errors > 0 {
		return fmt.Errorf("lab: %d of %d requests failed (%v)", res.Errors, res.Requests, res.ErrorsByKind)
	}
	if rep.Shield != nil && rep.Shield.Errors > 0 {
		return fmt.Errorf("lab: %d requests of the shield comparison failed", rep.Shield.Errors)
	}
	if res.Responses == 0 {
		return errors.New("lab: no request got a response")
	}
	return nil
}

func (o *Options) defaults() {
	if len(o.Regions) == 0 {
		o.Regions = DefaultRegions
	}
	if o.Duration <= 0 {
		o.Duration = 8 * time.Second
	}
	if o.Warmup < 0 {
		o.Warmup = 0
	} else if o.Warmup == 0 {
		o.Warmup = 2 * time.Second
	}
	if o.Connections <= 0 {
		o.Connections = 24
	}
	if o.Objects <= 0 {
		o.Objects = 2000
	}
	if o.ZipfS <= 0 {
		o.ZipfS = 1.0
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.ShieldRequests <= 0 {
		o.ShieldRequests = 6000
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
}

// loadConfig reads the CDN file, or writes the built-in one to a temporary
// directory (so its relative networks path works) and reads that. It
// returns the file's path too: the control plane's revisions are parsed
// as if read from it.
func loadConfig(path string) (*config.Config, string, func(), error) {
	if path != "" {
		cfg, err := config.Load(path)
		return cfg, path, func() {}, err
	}
	dir, err := os.MkdirTemp("", "outpost-lab-")
	if err != nil {
		return nil, "", nil, fmt.Errorf("lab: %w", err)
	}
	cleanup := func() { os.RemoveAll(dir) }
	for _, name := range []string{"lab.yaml", "networks.csv"} {
		data, _ := builtin.ReadFile(name)
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			cleanup()
			return nil, "", nil, fmt.Errorf("lab: %w", err)
		}
	}
	path = filepath.Join(dir, "lab.yaml")
	cfg, err := config.Load(path)
	if err != nil {
		cleanup()
		return nil, "", nil, err
	}
	cfg.Path = "built-in lab.yaml (deploy/examples/lab.yaml)"
	return cfg, path, cleanup, nil
}

// sockets are every listener of the lab, opened before any role starts.
type sockets struct {
	origin net.Listener
	assets net.Listener // the text origin's; nil without one
	pops   []pop.Listeners
	dns    dnsgeo.Listeners
}

func (s *sockets) close() {
	for _, c := range []net.Listener{s.origin, s.assets} {
		if c != nil {
			c.Close()
		}
	}
	for _, p := range s.pops {
		p.Close()
	}
	s.dns.Close()
}

// openSockets listens on every address of the lab and says clearly which
// one is taken.
func openSockets(ctx context.Context, cfg *config.Config, dc *config.DNS, originAddr string, assets *assetOrigin, pops []*pop.PoP) (*sockets, error) {
	s := &sockets{}
	var lc net.ListenConfig
	listen := func(addr, what string) (net.Listener, error) {
		ln, err := lc.Listen(ctx, "tcp", addr)
		if err != nil {
			s.close()
			return nil, taken(cfg, addr, what, err)
		}
		return ln, nil
	}
	var err error
	if s.origin, err = listen(originAddr, "the origin (services[0].origin.servers[0].url)"); err != nil {
		return nil, err
	}
	if assets != nil {
		if s.assets, err = listen(assets.addr, "the text origin (the origin of the service with compress)"); err != nil {
			return nil, err
		}
	}
	for i, p := range pops {
		ls, err := p.Listen(ctx)
		if err != nil {
			s.close()
			pc := cfg.POPs[i]
			return nil, taken(cfg, pc.Listen+" "+pc.Admin+" "+pc.TLS.Listen,
				fmt.Sprintf("PoP %s (pops[].listen, admin or tls.listen)", p.Name()), err)
		}
		s.pops = append(s.pops, ls)
	}
	if s.dns, err = dnsgeo.Listen(ctx, dc.Listen, dc.Admin); err != nil {
		s.close()
		return nil, taken(cfg, strings.Join(dc.Listen, " ")+" "+dc.Admin, "the DNS server (dns.listen, dns.admin)", err)
	}
	return s, nil
}

// taken explains a failed listen.
func taken(cfg *config.Config, addr, what string, err error) error {
	return fmt.Errorf("lab: cannot listen on %s for %s: %w\n"+
		"  Another program (or another lab) may hold it: stop it, or copy deploy/examples/lab.yaml,\n"+
		"  change the address there, and run `outpost lab -config yourcopy.yaml`", addr, what, err)
}

// roleSet runs the roles and collects how they ended.
type roleSet struct {
	wg     sync.WaitGroup
	mu     sync.Mutex
	errs   []error
	failed chan error
	once   sync.Once
}

func (r *roleSet) start(name string, serve func() error) {
	r.once.Do(func() { r.failed = make(chan error, 16) })
	r.wg.Go(func() {
		if err := serve(); err != nil {
			err = fmt.Errorf("lab: %s: %w", name, err)
			r.mu.Lock()
			r.errs = append(r.errs, err)
			r.mu.Unlock()
			r.failed <- err
		}
	})
}

// wait waits for every role to stop and returns their errors.
func (r *roleSet) wait() error {
	r.wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	return errors.Join(r.errs...)
}

// runLoad benchmarks the CDN through its DNS server.
func runLoad(ctx context.Context, cfg *config.Config, dc *config.DNS, svc config.Service, originAddr string, opts Options) (*bench.Result, error) {
	return runLoadWith(ctx, cfg, dc, svc, originAddr, opts, nil)
}

// runLoadWith is runLoad with the bench configuration changed by tweak;
// an empty originAddr leaves the origin's counters alone (no offload).
func runLoadWith(ctx context.Context, cfg *config.Config, dc *config.DNS, svc config.Service, originAddr string, opts Options, tweak func(*bench.Config) error) (*bench.Result, error) {
	host := serviceHost(cfg, svc)
	_, port, _ := net.SplitHostPort(cfg.POPs[0].Listen)
	var regions []bench.Region
	for _, r := range opts.Regions {
		reg, err := bench.ParseRegion(r)
		if err != nil {
			return nil, fmt.Errorf("lab: %w", err)
		}
		regions = append(regions, reg)
	}
	wl, err := bench.NewZipf(bench.ZipfOptions{Objects: uint64(opts.Objects), S: opts.ZipfS, Seed: opts.Seed})
	if err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	dnsAddr := dc.Listen[0]
	if h, p, err := net.SplitHostPort(dnsAddr); err == nil && (h == "" || net.ParseIP(h).IsUnspecified()) {
		dnsAddr = net.JoinHostPort("127.0.0.1", p)
	}
	bc := bench.Config{
		URL:         "http://" + net.JoinHostPort(host, port) + "/",
		DNS:         dnsAddr,
		Regions:     regions,
		Connections: opts.Connections,
		Rate:        opts.Rate,
		Duration:    opts.Duration,
		Warmup:      opts.Warmup,
		Workload:    wl,
		Seed:        opts.Seed,
		Verify:      true,
		Logger:      opts.Logger,
	}
	if originAddr != "" {
		bc.OriginStats = (&url.URL{Scheme: "http", Host: originAddr, Path: "/_origin/stats"}).String()
	}
	if tweak != nil {
		if err := tweak(&bc); err != nil {
			return nil, fmt.Errorf("lab: %w", err)
		}
	}
	res, err := bench.Run(ctx, bc, nil)
	if err != nil {
		return nil, fmt.Errorf("lab: load run: %w", err)
	}
	return res, nil
}

// serviceHost is the service's first hostname in the zone (DNS answers
// it), else its first hostname.
func serviceHost(cfg *config.Config, svc config.Service) string {
	for _, h := range svc.Hostnames {
		if strings.HasSuffix(h, "."+cfg.Zone) {
			return h
		}
	}
	return svc.Hostnames[0]
}

// printTryIt prints commands to try the running lab by hand.
func printTryIt(out io.Writer, cfg *config.Config, dc *config.DNS, svc config.Service, originAddr string) {
	dnsHost, dnsPort, _ := net.SplitHostPort(dc.Listen[0])
	if dnsHost == "" {
		dnsHost = "127.0.0.1"
	}
	host := svc.Hostnames[0]
	fmt.Fprintf(out, "\nThe CDN keeps running (Ctrl-C stops it). Try it by hand:\n")
	for _, r := range DefaultRegions {
		name, rest, _ := strings.Cut(r, "=")
		cidr, _, _ := strings.Cut(rest, ":")
		fmt.Fprintf(out, "  dig @%s -p %s %s +subnet=%s +short   # a client in %s\n", dnsHost, dnsPort, host, cidr, name)
	}
	for _, p := range cfg.POPs {
		_, port, _ := net.SplitHostPort(p.Listen)
		h, _, _ := net.SplitHostPort(p.Listen)
		fmt.Fprintf(out, "  curl -s -o /dev/null -D - --resolve %s:%s:%s http://%s:%s/obj/hello | grep -i cache-status   # PoP %s\n",
			host, port, h, host, port, p.Name)
	}
	if tl := cfg.POPs[0].TLS; tl.Enabled() {
		h, port, _ := net.SplitHostPort(tl.Listen)
		fmt.Fprintf(out, "  curl -sk -o /dev/null -D - --resolve %s:%s:%s https://%s:%s/obj/hello | grep -iE 'alt-svc|cache-status'   # HTTPS (self-signed)\n",
			host, port, h, host, port)
	}
	fmt.Fprintf(out, "  curl -s http://%s/stats   # PoP %s's figures\n", cfg.POPs[0].Admin, cfg.POPs[0].Name)
	if dc.Admin != "" {
		fmt.Fprintf(out, "  curl -s http://%s/stats   # the DNS server's view\n", dc.Admin)
	}
	fmt.Fprintf(out, "  curl -s http://%s/_origin/stats   # what reached the origin\n", originAddr)
	printTryEdge(out, cfg)
}

// printTryEdge prints commands to try the edge features the file turns on
// by hand, at its first PoP (PROXY protocol at the first PoP that trusts
// a loopback address).
func printTryEdge(out io.Writer, cfg *config.Config) {
	p := cfg.POPs[0]
	listen := reach(p, p.Listen)
	for _, svc := range cfg.Services {
		host := svc.Hostnames[0]
		switch {
		case svc.Compress.Enabled:
			fmt.Fprintf(out, "  curl -s -o /dev/null -w '%%{size_download} bytes\\n' -D - -H 'Accept-Encoding: br' -H 'Host: %s' http://%s/app.js | grep -iE 'content-encoding|cache-status|bytes'   # compression\n", host, listen)
		case svc.SignedURLs.Enabled():
			file := cfg.Path
			if strings.HasPrefix(file, "built-in") {
				file = "deploy/examples/lab.yaml"
			}
			h, port, _ := net.SplitHostPort(listen)
			fmt.Fprintf(out, "  curl -s -o /dev/null -w '%%{http_code}\\n' --resolve %s:%s:%s \"$(outpost sign --config %s --ttl 5m http://%s:%s/obj/1)\"   # a signed URL (unsigned: 403)\n",
				host, port, h, file, host, port)
		}
	}
	for _, q := range cfg.POPs {
		if bal, ok := loopbackBalancer(q); ok {
			h, port, _ := net.SplitHostPort(reach(q, q.Listen))
			fmt.Fprintf(out, "  printf 'PROXY TCP4 198.51.100.7 %s 40000 %s\\r\\nGET /obj/1 HTTP/1.1\\r\\nHost: %s\\r\\nConnection: close\\r\\n\\r\\n' | nc -s %s %s %s | head -1   # PROXY protocol at %s\n",
				h, port, serviceHost(cfg, cfg.Services[0]), bal, h, port, q.Name)
			break
		}
	}
}
