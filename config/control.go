package config

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// This file is the control section: how every role reaches the control
// plane (a NATS cluster with JetStream, see package control), and the
// optional embedded NATS server `outpost bus` runs.

// ControlUserEnv is the environment variable that, when set and not
// empty, overrides control.user: the file is shared by every host, the
// bus user is each host's own.
const ControlUserEnv = "OUTPOST_CONTROL_USER"

// Defaults of the control section (docs/control.md lists them).
const (
	DefaultControlTimeout          = 2 * time.Second
	DefaultControlPurgeTimeout     = 5 * time.Second
	DefaultControlStatsTimeout     = 2 * time.Second
	DefaultControlStatsMaxReplies  = 1000
	DefaultControlReconnectWait    = 100 * time.Millisecond
	DefaultControlReconnectMaxWait = 5 * time.Second
	DefaultControlMaxPending       = 4096
	DefaultControlStateInterval    = time.Second
	DefaultControlReplicas         = 1
	DefaultControlPurgeHistory     = 7 * 24 * time.Hour
	DefaultControlServerListen     = "127.0.0.1:4222"
	DefaultControlClusterName      = "outpost"
)

// Control is the control section. It is the zero value (Servers empty)
// when the file has none: then every role works as without a bus (PoPs
// alone, `outpost purge` and `outpost stats` over the admin listeners).
//
// Credential files are named, never read, here: the file travels over the
// bus to every host, and each host keeps its own credential at the path
// the file names.
type Control struct {
	// Servers are the NATS URLs (nats:// or tls://) a client tries, in
	// random order; at least one.
	Servers []string
	// CredsFile is a NATS credentials file (a user JWT and its nkey seed),
	// absolute; "" for none.
	CredsFile string
	// User and PasswordFile are a NATS user and the file holding its
	// password (absolute); both or neither, and not with CredsFile.
	// $OUTPOST_CONTROL_USER overrides User.
	User         string
	PasswordFile string
	// TLS is how clients check the servers and prove themselves; the zero
	// value means plain TCP unless a server URL is tls://.
	TLS ControlTLS
	// Timeout bounds one request to the bus (a JetStream call, a config
	// push, connecting); default 2s.
	Timeout time.Duration
	// PurgeTimeout is how long `outpost purge` waits for the PoPs'
	// acknowledgements; default 5s.
	PurgeTimeout time.Duration
	// StatsTimeout and StatsMaxReplies bound the scatter-gather of
	// `outpost stats`: it stops when every PoP of the file answered, after
	// StatsTimeout (default 2s), or after StatsMaxReplies answers (default
	// 1000).
	StatsTimeout    time.Duration
	StatsMaxReplies int
	// ReconnectWait and ReconnectMaxWait bound the reconnect backoff: the
	// wait doubles from ReconnectWait (default 100ms) up to
	// ReconnectMaxWait (default 5s), with jitter; clients retry for ever.
	ReconnectWait    time.Duration
	ReconnectMaxWait time.Duration
	// MaxPending is the most messages a subscription holds before the
	// client drops (and counts) new ones; default 4096.
	MaxPending int
	// StateInterval is how often each PoP publishes its state; default 1s.
	StateInterval time.Duration
	// Replicas is the JetStream replication of the purge stream and the
	// config bucket (1, or 3 on a three-node cluster); default 1.
	Replicas int
	// PurgeHistory is how long the purge stream keeps purges for PoPs that
	// were away; default 168h (7 days).
	PurgeHistory time.Duration
	// Server configures the embedded NATS server of `outpost bus`; nil
	// when the section has no server part.
	Server *ControlServer
}

// Enabled reports whether the file has a control section.
func (c *Control) Enabled() bool { return len(c.Servers) > 0 }

// ControlTLS names the client's TLS files (absolute paths, "" for none).
type ControlTLS struct {
	CAFile   string // CAs that sign the servers' certificates; "" = the system's
	CertFile string // the client certificate, for servers that verify clients
	KeyFile  string
}

// Enabled reports whether any TLS setting is given.
func (t ControlTLS) Enabled() bool { return t.CAFile != "" || t.CertFile != "" }

// ControlServer is the embedded NATS server (`outpost bus`).
type ControlServer struct {
	// Listen is the client address; default 127.0.0.1:4222.
	Listen string
	// StoreDir is where JetStream keeps the purge stream and the config
	// bucket (absolute); required.
	StoreDir string
	// Cluster joins the server to others; zero when Listen is "".
	Cluster ControlCluster
	// TLS, when CertFile is set, makes the client listener TLS only;
	// with CAFile it also requires and verifies client certificates.
	TLS ControlServerTLS
	// Users are the bus's users and their roles; none means no
	// authentication (a lab on loopback only).
	Users []ControlUser
}

// ControlCluster is the route listener and the other servers' routes.
type ControlCluster struct {
	Name   string   // the cluster's name; default "outpost"
	Listen string   // the route address, e.g. 0.0.0.0:6222; "" = no cluster
	Routes []string // nats-route://host:port of every member (itself may be listed)
}

// ControlServerTLS names the server's TLS files (absolute paths).
type ControlServerTLS struct {
	CertFile string
	KeyFile  string
	CAFile   string // verify client certificates against it; "" = no client certificates
}

// Control roles: what a bus user may do (package control states the
// permissions of each).
const (
	RoleOperator = "operator" // publishes config and purges; reads everything
	RolePoP      = "pop"      // reads config and purges, publishes its own state and acks
	RoleDNS      = "dns"      // reads config and states
)

// ControlUser is a user of the embedded server.
type ControlUser struct {
	User         string
	PasswordFile string // absolute; read when the server starts
	Role         string // RoleOperator, RolePoP or RoleDNS
	// PoP is the PoP a pop user acts for; default the user's name.
	PoP string
}

// controlAt remembers where the section's values were, for checks against
// the rest of the file.
type controlAt struct {
	pops []popRef // the pop of each user of the server
}

// popRef is where a pop user names its PoP: the pop key, or the user key
// when the PoP defaults to the user's name.
type popRef struct {
	node *yaml.Node
	key  string
}

// control decodes the control section.
func (d *decoder) control(n *yaml.Node, path string) (Control, controlAt) {
	c := Control{
		Timeout:          DefaultControlTimeout,
		PurgeTimeout:     DefaultControlPurgeTimeout,
		StatsTimeout:     DefaultControlStatsTimeout,
		StatsMaxReplies:  DefaultControlStatsMaxReplies,
		ReconnectWait:    DefaultControlReconnectWait,
		ReconnectMaxWait: DefaultControlReconnectMaxWait,
		MaxPending:       DefaultControlMaxPending,
		StateInterval:    DefaultControlStateInterval,
		Replicas:         DefaultControlReplicas,
		PurgeHistory:     DefaultControlPurgeHistory,
	}
	var at controlAt
	var userAt, passAt, credsAt, waitAt *yaml.Node
	ok := d.fields(n, path, []field{
		required("servers", func(n *yaml.Node, path string) { c.Servers = d.controlServers(n, path) }),
		optional("creds_file", func(n *yaml.Node, path string) {
			credsAt = n
			d.setPath(&c.CredsFile, "creds_file", "no credentials file")(n, path)
		}),
		optional("user", func(n *yaml.Node, path string) {
			userAt = n
			if s, ok := d.str(n, path); ok {
				if err := checkBusUser(s); err != nil {
					d.wrapf(n, path, err, "%v", err)
					return
				}
				c.User = s
			}
		}),
		optional("password_file", func(n *yaml.Node, path string) {
			passAt = n
			d.setPath(&c.PasswordFile, "password_file", "no password")(n, path)
		}),
		optional("tls", func(n *yaml.Node, path string) { c.TLS = d.controlTLS(n, path) }),
		optional("timeout", d.setTimeout(&c.Timeout)),
		optional("purge_timeout", d.setTimeout(&c.PurgeTimeout)),
		optional("stats_timeout", d.setTimeout(&c.StatsTimeout)),
		optional("stats_max_replies", d.setInt(&c.StatsMaxReplies, 1, 100000)),
		optional("reconnect_wait", d.setPositive(&c.ReconnectWait, "reconnect_wait")),
		optional("reconnect_max_wait", func(n *yaml.Node, path string) {
			waitAt = n
			d.setPositive(&c.ReconnectMaxWait, "reconnect_max_wait")(n, path)
		}),
		optional("max_pending", d.setInt(&c.MaxPending, 16, 1<<20)),
		optional("state_interval", d.setPositive(&c.StateInterval, "state_interval")),
		optional("replicas", func(n *yaml.Node, path string) {
			d.setInt(&c.Replicas, 1, 5)(n, path)
		}),
		optional("purge_history", d.setPositive(&c.PurgeHistory, "purge_history")),
		optional("server", func(n *yaml.Node, path string) {
			s, pops := d.controlServer(n, path)
			c.Server, at.pops = s, pops
		}),
	})
	if !ok {
		return Control{}, at
	}
	switch {
	case credsAt != nil && (userAt != nil || passAt != nil):
		other := userAt
		if other == nil {
			other = passAt
		}
		d.errorf(credsAt, join(path, "creds_file"), "creds_file and user/password_file (line %d) both give the credential; keep one", other.Line)
	case userAt != nil && passAt == nil:
		d.errorf(userAt, join(path, "user"), "a user needs password_file (the file holding its password)")
	case passAt != nil && userAt == nil:
		d.errorf(passAt, join(path, "password_file"), "password_file needs user (or set $%s)", ControlUserEnv)
	}
	if waitAt != nil && c.ReconnectMaxWait < c.ReconnectWait {
		d.errorf(waitAt, join(path, "reconnect_max_wait"), "%s is shorter than reconnect_wait (%s)", formatDuration(c.ReconnectMaxWait), formatDuration(c.ReconnectWait))
	}
	if c.TLS.Enabled() {
		for i, s := range c.Servers {
			if strings.HasPrefix(s, "nats://") {
				c.Servers[i] = "tls://" + strings.TrimPrefix(s, "nats://")
			}
		}
	}
	return c, at
}

// controlEnv applies $OUTPOST_CONTROL_USER over control.user.
func (d *decoder) controlEnv(c *Control) {
	u := strings.TrimSpace(os.Getenv(ControlUserEnv))
	if u == "" || !c.Enabled() {
		return
	}
	if err := checkBusUser(u); err != nil {
		d.wrapf(nil, "$"+ControlUserEnv, err, "%v", err)
		return
	}
	c.User = u
}

// checkBusUser checks a NATS user name: printable ASCII without spaces.
func checkBusUser(u string) error {
	if u == "" {
		return fmt.Errorf("user must not be empty")
	}
	for i := 0; i < len(u); i++ {
		if u[i] <= ' ' || u[i] >= 0x7f || u[i] == '.' || u[i] == '*' || u[i] == '>' {
			return fmt.Errorf("user %q: use printable ASCII without spaces, '.', '*' or '>'", u)
		}
	}
	return nil
}

// controlServers decodes control.servers: a non-empty list of distinct
// NATS URLs.
func (d *decoder) controlServers(n *yaml.Node, path string) []string {
	items, ok := d.list(n, path)
	if !ok {
		return nil
	}
	if len(items) == 0 {
		d.errorf(n, path, `at least one server is required (e.g. ["nats://127.0.0.1:4222"])`)
		return nil
	}
	var out []string
	lines := make(map[string]int)
	for i, item := range items {
		p := index(path, i)
		s, ok := d.str(item, p)
		if !ok {
			continue
		}
		u, err := parseNATSURL(s, "nats", "tls")
		if err != nil {
			d.wrapf(item, p, err, "%v", err)
			continue
		}
		if first, dup := lines[u]; dup {
			d.errorf(item, p, "%s is listed twice (first at line %d)", u, first)
			continue
		}
		lines[u] = item.Line
		out = append(out, u)
	}
	return out
}

// parseNATSURL checks a server URL: one of schemes, a host and a port
// (a bare host:port gets the first scheme).
func parseNATSURL(s string, schemes ...string) (string, error) {
	if !strings.Contains(s, "://") {
		s = schemes[0] + "://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("invalid URL %q: %v", s, err)
	}
	okScheme := false
	for _, sc := range schemes {
		okScheme = okScheme || u.Scheme == sc
	}
	switch {
	case !okScheme:
		return "", fmt.Errorf("invalid URL %q: the scheme must be %s", s, strings.Join(schemes, " or "))
	case u.User != nil:
		return "", fmt.Errorf("invalid URL %q: put credentials in creds_file or user/password_file, not in the URL", s)
	case u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "":
		return "", fmt.Errorf("invalid URL %q: want %s://host:port only", s, schemes[0])
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil || host == "" {
		return "", fmt.Errorf("invalid URL %q: want %s://host:port", s, schemes[0])
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return "", fmt.Errorf("invalid URL %q: port %q must be a number in 1..65535", s, port)
	}
	return u.Scheme + "://" + u.Host, nil
}

// controlTLS decodes control.tls.
func (d *decoder) controlTLS(n *yaml.Node, path string) ControlTLS {
	var t ControlTLS
	var certAt, keyAt *yaml.Node
	d.fields(n, path, []field{
		optional("ca_file", d.setPath(&t.CAFile, "ca_file", "the system's CAs")),
		optional("cert_file", func(n *yaml.Node, path string) {
			certAt = n
			d.setPath(&t.CertFile, "cert_file", "no client certificate")(n, path)
		}),
		optional("key_file", func(n *yaml.Node, path string) {
			keyAt = n
			d.setPath(&t.KeyFile, "key_file", "no client certificate")(n, path)
		}),
	})
	d.certKeyPair(path, certAt, keyAt)
	return t
}

// certKeyPair reports a cert_file without key_file or the other way round.
func (d *decoder) certKeyPair(path string, certAt, keyAt *yaml.Node) {
	switch {
	case certAt != nil && keyAt == nil:
		d.errorf(certAt, join(path, "cert_file"), "cert_file needs key_file")
	case keyAt != nil && certAt == nil:
		d.errorf(keyAt, join(path, "key_file"), "key_file needs cert_file")
	}
}

// controlServer decodes control.server.
func (d *decoder) controlServer(n *yaml.Node, path string) (*ControlServer, []popRef) {
	s := &ControlServer{Listen: DefaultControlServerListen, Cluster: ControlCluster{Name: DefaultControlClusterName}}
	var pops []popRef
	d.fields(n, path, []field{
		optional("listen", func(n *yaml.Node, path string) {
			if v, ok := d.str(n, path); ok {
				a, err := parseHostPort(v)
				if err != nil {
					d.wrapf(n, path, err, "%v", err)
					return
				}
				s.Listen = a.String()
			}
		}),
		required("store_dir", d.setPath(&s.StoreDir, "store_dir", "")),
		optional("cluster", func(n *yaml.Node, path string) { d.controlCluster(n, path, &s.Cluster) }),
		optional("tls", func(n *yaml.Node, path string) {
			d.fields(n, path, []field{
				required("cert_file", d.setPath(&s.TLS.CertFile, "cert_file", "")),
				required("key_file", d.setPath(&s.TLS.KeyFile, "key_file", "")),
				optional("ca_file", d.setPath(&s.TLS.CAFile, "ca_file", "no client certificates")),
			})
		}),
		optional("users", func(n *yaml.Node, path string) { s.Users, pops = d.controlUsers(n, path) }),
	})
	return s, pops
}

// controlCluster decodes control.server.cluster.
func (d *decoder) controlCluster(n *yaml.Node, path string, c *ControlCluster) {
	var routesAt *yaml.Node
	d.fields(n, path, []field{
		optional("name", func(n *yaml.Node, path string) {
			if v, ok := d.str(n, path); ok {
				if !nameRE.MatchString(v) {
					d.errorf(n, path, "invalid name %q: use lowercase letters, digits, '-' and '_'", v)
					return
				}
				c.Name = v
			}
		}),
		required("listen", func(n *yaml.Node, path string) {
			if v, ok := d.str(n, path); ok {
				a, err := parseHostPort(v)
				if err != nil {
					d.wrapf(n, path, err, "%v", err)
					return
				}
				c.Listen = a.String()
			}
		}),
		optional("routes", func(n *yaml.Node, path string) {
			routesAt = n
			items, ok := d.list(n, path)
			if !ok {
				return
			}
			for i, item := range items {
				p := index(path, i)
				v, ok := d.str(item, p)
				if !ok {
					continue
				}
				u, err := parseNATSURL(v, "nats-route", "nats", "tls")
				if err != nil {
					d.wrapf(item, p, err, "%v", err)
					continue
				}
				c.Routes = append(c.Routes, u)
			}
		}),
	})
	if routesAt == nil && c.Listen != "" {
		d.errorf(n, join(path, "routes"), "missing required key (list every member of the cluster, e.g. [nats-route://n1:6222, nats-route://n2:6222, nats-route://n3:6222])")
	}
}

// controlUsers decodes control.server.users.
func (d *decoder) controlUsers(n *yaml.Node, path string) ([]ControlUser, []popRef) {
	items, ok := d.list(n, path)
	if !ok {
		return nil, nil
	}
	var out []ControlUser
	var pops []popRef
	names := make(map[string]int)
	for i, item := range items {
		p := index(path, i)
		var u ControlUser
		var userAt, popAt *yaml.Node
		ok := d.fields(item, p, []field{
			required("user", func(n *yaml.Node, path string) {
				userAt = n
				if s, ok := d.str(n, path); ok {
					if err := checkBusUser(s); err != nil {
						d.wrapf(n, path, err, "%v", err)
						return
					}
					u.User = s
				}
			}),
			required("password_file", d.setPath(&u.PasswordFile, "password_file", "")),
			required("role", func(n *yaml.Node, path string) {
				if s, ok := d.str(n, path); ok {
					switch s {
					case RoleOperator, RolePoP, RoleDNS:
						u.Role = s
					default:
						d.errorf(n, path, "unknown role %q (want %s, %s or %s)", s, RoleOperator, RolePoP, RoleDNS)
					}
				}
			}),
			optional("pop", func(n *yaml.Node, path string) {
				popAt = n
				d.setString(&u.PoP)(n, path)
			}),
		})
		if !ok || u.User == "" {
			continue
		}
		if first, dup := names[u.User]; dup {
			d.errorf(userAt, join(p, "user"), "user %q is listed twice (first at line %d)", u.User, first)
			continue
		}
		names[u.User] = userAt.Line
		ref := popRef{popAt, join(p, "pop")}
		switch {
		case u.Role == RolePoP && u.PoP == "":
			u.PoP, ref = u.User, popRef{userAt, join(p, "user")}
		case u.Role != RolePoP && popAt != nil:
			d.errorf(popAt, join(p, "pop"), "only a user with role pop acts for a PoP")
			ref = popRef{}
		}
		out = append(out, u)
		pops = append(pops, ref)
	}
	return out, pops
}

// controlRefs checks the control section against the rest of the file:
// each pop user acts for a PoP of the file.
func (d *decoder) controlRefs(c *Config, at *controlAt) {
	if c.Control.Server == nil || len(c.POPs) == 0 {
		return
	}
	for i, u := range c.Control.Server.Users {
		if u.Role != RolePoP || i >= len(at.pops) || at.pops[i].node == nil {
			continue
		}
		if _, err := c.POP(u.PoP); err != nil {
			hint := ""
			if strings.HasSuffix(at.pops[i].key, ".user") {
				hint = " (pop: names the PoP when it is not the user's name)"
			}
			d.errorf(at.pops[i].node, at.pops[i].key, "user %q acts for PoP %q, which the file does not list%s", u.User, u.PoP, hint)
		}
	}
}
