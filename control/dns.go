package control

import (
	"context"
	"errors"
	"log/slog"
	"reflect"
	"sync"

	"github.com/outpost-cdn/outpost/config"
	"github.com/outpost-cdn/outpost/popapi"
)

// DNS is what the control plane needs of a DNS server: *dnsgeo.Server
// has it. The control package does not import dnsgeo, nor dnsgeo this
// package: they meet through this interface and popapi.State.
type DNS interface {
	// ObserveState takes a PoP's state from the bus.
	ObserveState(popapi.State)
	// Reload applies a configuration as SIGHUP does; an error keeps the
	// running one.
	Reload(*config.Config) error
}

// DNSOptions configure a DNSFollower.
type DNSOptions struct {
	// Name is the DNS server's name on the bus (its host key "dns.NAME").
	Name string
	// Path and Config are the local file the server started from and its
	// Config (see Follower).
	Path   string
	Config *config.Config
	// Logger; nil means the Conn's.
	Logger *slog.Logger
}

// DNSFollower is a DNS server's side of the control plane: it feeds the
// PoPs' states to the server and keeps it on the latest config revision,
// recording what it runs (and a revision it refused, and why) in
// HostsBucket. While the bus is unreachable the server routes on its
// probes alone, as without a control plane; the connection retries in the
// background and the follower picks up where it was.
type DNSFollower struct {
	conn     *Conn
	dns      DNS
	log      *slog.Logger
	follower *Follower
}

// NewDNSFollower makes the follower of DNS server d on conn (a connection
// as Identity{config.RoleDNS, opts.Name}).
func NewDNSFollower(conn *Conn, d DNS, opts DNSOptions) (*DNSFollower, error) {
	if err := checkToken("DNS server name", opts.Name); err != nil {
		return nil, err
	}
	if opts.Config == nil {
		return nil, errors.New("control: the DNS follower needs the server's starting Config")
	}
	log := opts.Logger
	if log == nil {
		log = conn.log
	}
	return &DNSFollower{
		conn: conn, dns: d, log: log,
		follower: &Follower{
			Conn: conn, Role: config.RoleDNS, Host: opts.Name, Path: opts.Path, Started: opts.Config,
			Apply: d.Reload, Restart: DNSRestartSettings, Logger: log,
		},
	}, nil
}

// Config returns what the follower applied (see HostReport).
func (f *DNSFollower) Config() HostReport { return f.follower.Report() }

// Run follows the states and the config until ctx is done.
func (f *DNSFollower) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	wg.Go(func() {
		errs[0] = f.conn.WatchStates(ctx, f.dns.ObserveState)
		cancel()
	})
	wg.Go(func() {
		errs[1] = f.follower.Run(ctx)
		cancel()
	})
	wg.Wait()
	return errors.Join(errs...)
}

// DNSRestartSettings is the Restart function of a DNS server: of what a
// revision changes, only the control section waits for a restart (the
// server's Reload refuses a change of dns.listen or dns.admin, which the
// host report then shows as refused).
func DNSRestartSettings(started, next *config.Config) []string {
	if !reflect.DeepEqual(started.Control, next.Control) {
		return []string{"control"}
	}
	return nil
}
