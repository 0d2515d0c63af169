// Package bus runs an embedded NATS server with JetStream for Outpost's
// control plane (`outpost bus`): the users of the file's control section
// with the permissions of their roles (control.Permissions), the purge
// stream and the config buckets created at start, and cluster routes so
// three of them make a fault-tolerant cluster. It exists so a small fleet
// needs no other software; a fleet that already runs NATS points the
// control section at it instead (docs/control.md).
package bus

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/outpost-cdn/outpost/config"
	"github.com/outpost-cdn/outpost/control"
)

// Options configure a Server.
type Options struct {
	// Name is the server's name, unique in its cluster; "" means one
	// derived from the host name and port.
	Name string
	// Listen is the client address; port 0 picks a free one.
	Listen string
	// StoreDir is where JetStream keeps its data.
	StoreDir string
	// Cluster, when Cluster.Listen is set, makes the server a cluster
	// member (port 0 picks a free one).
	Cluster config.ControlCluster
	// TLS, when CertFile is set, makes the client listener TLS.
	TLS config.ControlServerTLS
	// Users are the bus's users; none means no authentication.
	Users []User
	// Control gives the bounds of the connection the server uses to
	// create the stream and buckets (replicas, purge history, timeout);
	// nil means the defaults of a file with only control.servers.
	Control *config.Control
	// Logger receives the server's notices and errors; nil means
	// slog.Default(). Debug and trace logs are off.
	Logger *slog.Logger
}

// User is a user of the bus with its password and role.
type User struct {
	Name     string
	Password string
	Role     string // config.RoleOperator, RolePoP or RoleDNS
	PoP      string // the PoP a pop user acts for
}

// FromConfig returns the Options of the control section's server part for
// the server named name, reading the users' password files.
func FromConfig(cc *config.Control, name string) (Options, error) {
	if cc.Server == nil {
		return Options{}, errors.New("bus: the control section has no server part (control.server)")
	}
	s := cc.Server
	o := Options{Name: name, Listen: s.Listen, StoreDir: s.StoreDir, Cluster: s.Cluster, TLS: s.TLS, Control: cc}
	for _, u := range s.Users {
		pw, err := os.ReadFile(u.PasswordFile)
		if err != nil {
			return Options{}, fmt.Errorf("bus: user %s: %w", u.User, err)
		}
		p := strings.TrimSpace(string(pw))
		if p == "" {
			return Options{}, fmt.Errorf("bus: user %s: %s is empty", u.User, u.PasswordFile)
		}
		o.Users = append(o.Users, User{Name: u.User, Password: p, Role: u.Role, PoP: u.PoP})
	}
	return o, nil
}

// Server is a running embedded NATS server.
type Server struct {
	ns  *server.Server
	log *slog.Logger
}

// internalUser is the server's own user: it creates the stream and
// buckets through an in-process connection; its password is random and
// never leaves the process.
const internalUser = "_outpost_bus"

// Start starts the server, waits until it accepts connections (and, in a
// cluster, until JetStream has a leader for the streams), and creates the
// purge stream and the buckets.
func Start(ctx context.Context, o Options) (*Server, error) {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	host, port, err := splitListen(o.Listen)
	if err != nil {
		return nil, err
	}
	so := &server.Options{
		ServerName: o.Name,
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   o.StoreDir,
		NoSigs:     true,
		MaxPayload: 1 << 20,
	}
	if so.ServerName == "" {
		h, _ := os.Hostname()
		so.ServerName = fmt.Sprintf("%s-%d", h, port)
	}
	if o.Cluster.Listen != "" {
		ch, cp, err := splitListen(o.Cluster.Listen)
		if err != nil {
			return nil, err
		}
		so.Cluster = server.ClusterOpts{Name: o.Cluster.Name, Host: ch, Port: cp}
		for _, r := range o.Cluster.Routes {
			u, err := url.Parse(strings.Replace(r, "nats-route://", "nats://", 1))
			if err != nil {
				return nil, fmt.Errorf("bus: route %s: %w", r, err)
			}
			so.Routes = append(so.Routes, u)
		}
	}
	if o.TLS.CertFile != "" {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: o.TLS.CertFile, KeyFile: o.TLS.KeyFile, CaFile: o.TLS.CAFile, Verify: o.TLS.CAFile != ""})
		if err != nil {
			return nil, fmt.Errorf("bus: tls: %w", err)
		}
		so.TLSConfig, so.TLS, so.TLSVerify = tc, true, o.TLS.CAFile != ""
		so.AllowNonTLS = false
	}
	var internalPass string
	if len(o.Users) > 0 {
		b := make([]byte, 24)
		rand.Read(b)
		internalPass = hex.EncodeToString(b)
		all := &server.Permissions{Publish: &server.SubjectPermission{Allow: []string{">"}}, Subscribe: &server.SubjectPermission{Allow: []string{">"}}}
		so.Users = append(so.Users, &server.User{Username: internalUser, Password: internalPass, Permissions: all})
		for _, u := range o.Users {
			if u.Name == internalUser {
				return nil, fmt.Errorf("bus: the user name %s is the server's own", internalUser)
			}
			p, err := control.Permissions(u.Role, u.PoP)
			if err != nil {
				return nil, fmt.Errorf("bus: user %s: %w", u.Name, err)
			}
			sp := &server.Permissions{
				Publish:   &server.SubjectPermission{Allow: p.Publish},
				Subscribe: &server.SubjectPermission{Allow: p.Subscribe},
			}
			if p.Responses {
				sp.Response = &server.ResponsePermission{MaxMsgs: 1, Expires: time.Minute}
			}
			so.Users = append(so.Users, &server.User{Username: u.Name, Password: u.Password, Permissions: sp})
		}
	}
	ns, err := server.NewServer(so)
	if err != nil {
		return nil, fmt.Errorf("bus: %w", err)
	}
	ns.SetLoggerV2(slogAdapter{log}, false, false, false)
	ns.Start()
	s := &Server{ns: ns, log: log}
	if !ns.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("bus: the server did not start listening on %s within 10s", o.Listen)
	}
	if err := s.ensure(ctx, o, internalPass); err != nil {
		s.Shutdown()
		return nil, err
	}
	return s, nil
}

// ensureWithin bounds how long Start retries creating the stream and
// buckets: a cluster first elects its meta leader, then a leader for each
// (JetStream's election timeout is 4 to 9 s; on a loaded machine it can
// take longer than 30 s in all).
const ensureWithin = 2 * time.Minute

// ensure creates the stream and buckets through an in-process connection,
// retrying with backoff while a cluster elects its JetStream leaders.
func (s *Server) ensure(ctx context.Context, o Options, pass string) error {
	cc := o.Control
	if cc == nil {
		cc = &config.Control{
			Timeout: config.DefaultControlTimeout, Replicas: config.DefaultControlReplicas,
			PurgeHistory: config.DefaultControlPurgeHistory, MaxPending: config.DefaultControlMaxPending,
		}
	}
	opts := []nats.Option{nats.InProcessServer(s.ns), nats.Name("outpost bus (internal)")}
	if pass != "" {
		opts = append(opts, nats.UserInfo(internalUser, pass))
	}
	nc, err := nats.Connect("", opts...)
	if err != nil {
		return fmt.Errorf("bus: in-process connection: %w", err)
	}
	conn, err := control.NewConn(nc, cc, control.Identity{Role: config.RoleOperator}, s.log)
	if err != nil {
		nc.Close()
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, ensureWithin)
	defer cancel()
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		err := conn.Ensure(ctx)
		if err == nil {
			return nil
		}
		s.log.Debug("bus: the stream and buckets are not ready yet", "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("bus: creating the stream and buckets: %w", err)
		case <-time.After(wait):
		}
	}
}

// splitListen turns host:port into the server's host and port (0 becomes
// -1: a random port).
func splitListen(addr string) (string, int, error) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("bus: listen %q: %w", addr, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("bus: listen %q: bad port", addr)
	}
	if port == 0 {
		port = -1
	}
	if h == "" {
		h = "0.0.0.0"
	}
	return h, port, nil
}

// ClientURL is the URL clients connect to (nats://host:port).
func (s *Server) ClientURL() string { return s.ns.ClientURL() }

// ClusterAddr is the route listener's address, or nil without a cluster.
func (s *Server) ClusterAddr() net.Addr {
	if a := s.ns.ClusterAddr(); a != nil {
		return a
	}
	return nil
}

// Shutdown stops the server and waits until it has.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}

// Run serves until ctx is done, then shuts down.
func (s *Server) Run(ctx context.Context) error {
	<-ctx.Done()
	s.Shutdown()
	return nil
}

// slogAdapter passes the server's notices, warnings and errors to slog.
type slogAdapter struct{ log *slog.Logger }

func (a slogAdapter) Noticef(format string, v ...any) {
	a.log.Info("nats: " + fmt.Sprintf(format, v...))
}
func (a slogAdapter) Warnf(format string, v ...any) { a.log.Warn("nats: " + fmt.Sprintf(format, v...)) }
func (a slogAdapter) Fatalf(format string, v ...any) {
	a.log.Error("nats: " + fmt.Sprintf(format, v...))
}
func (a slogAdapter) Errorf(format string, v ...any) {
	a.log.Error("nats: " + fmt.Sprintf(format, v...))
}
func (a slogAdapter) Debugf(format string, v ...any) {}
func (a slogAdapter) Tracef(format string, v ...any) {}
