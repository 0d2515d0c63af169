package control

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/outpost-cdn/outpost/config"
)

// Identity is who a client is on the bus: its role (config.RoleOperator,
// RolePoP or RoleDNS) and, for a PoP or a DNS server, its name.
type Identity struct {
	Role string
	Name string
}

// Conn is a connection to the control plane: a NATS connection with its
// JetStream context and the control section's bounds. It is safe for
// concurrent use.
type Conn struct {
	nc  *nats.Conn
	js  jetstream.JetStream
	cc  config.Control
	id  Identity
	log *slog.Logger
}

// DialOptions tune Dial.
type DialOptions struct {
	// Logger receives connection events; nil means slog.Default().
	Logger *slog.Logger
	// Wait makes Dial return at once even when no server answers yet: the
	// client keeps trying in the background (the reconnect backoff), as
	// long-running roles want. Commands leave it false and fail fast.
	Wait bool
	// OnReconnect and OnDisconnect, when set, are called on those events
	// (from the client's goroutine: do not block).
	OnReconnect  func()
	OnDisconnect func()
}

// Dial connects to the servers of cc as id. The credentials, TLS files
// and bounds come from cc.
func Dial(ctx context.Context, cc *config.Control, id Identity, opts DialOptions) (*Conn, error) {
	if !cc.Enabled() {
		return nil, errors.New("control: the file has no control section")
	}
	if id.Role != config.RoleOperator {
		if err := checkToken(id.Role+" name", id.Name); err != nil {
			return nil, err
		}
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	name := "outpost " + id.Role
	if id.Name != "" {
		name += " " + id.Name
	}
	wait, maxWait := cc.ReconnectWait, cc.ReconnectMaxWait
	no := []nats.Option{
		nats.Name(name),
		nats.Timeout(cc.Timeout),
		nats.MaxReconnects(-1),
		// A server that dies with its host or behind a cut link sends no
		// FIN: the client notices by its pings. nats.go's default (every
		// 2 min, 2 outstanding) took up to 6 min; this takes 10 to 15 s.
		nats.PingInterval(pingInterval),
		nats.MaxPingsOutstanding(2),
		nats.CustomReconnectDelay(func(attempts int) time.Duration {
			d := wait
			for i := 1; i < attempts && d < maxWait; i++ {
				d *= 2
			}
			d = min(d, maxWait)
			return d/2 + rand.N(d/2+1)
		}),
		nats.CustomInboxPrefix(inboxPrefix(id.Role, id.Name)),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if nc.IsClosed() {
				return // Close, not a fault
			}
			log.Warn("control: disconnected from the bus", "err", err)
			if opts.OnDisconnect != nil {
				opts.OnDisconnect()
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("control: reconnected to the bus", "server", nc.ConnectedUrlRedacted())
			if opts.OnReconnect != nil {
				opts.OnReconnect()
			}
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			log.Warn("control: bus error", "subject", subject, "err", err)
		}),
	}
	if opts.Wait {
		no = append(no, nats.RetryOnFailedConnect(true))
	}
	switch {
	case cc.CredsFile != "":
		no = append(no, nats.UserCredentials(cc.CredsFile))
	case cc.User != "":
		pw, err := readSecret(cc.PasswordFile)
		if err != nil {
			return nil, err
		}
		no = append(no, nats.UserInfo(cc.User, pw))
	}
	if cc.TLS.CAFile != "" {
		no = append(no, nats.RootCAs(cc.TLS.CAFile))
	}
	if cc.TLS.CertFile != "" {
		no = append(no, nats.ClientCert(cc.TLS.CertFile, cc.TLS.KeyFile))
	}
	if cc.TLS.Enabled() {
		no = append(no, nats.Secure())
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	nc, err := nats.Connect(strings.Join(cc.Servers, ","), no...)
	if err != nil {
		return nil, fmt.Errorf("control: connecting to %s: %w", strings.Join(cc.Servers, ", "), err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("control: %w", err)
	}
	return &Conn{nc: nc, js: js, cc: *cc, id: id, log: log}, nil
}

// pingInterval is how often a client pings its server when the
// connection is otherwise quiet.
const pingInterval = 5 * time.Second

// maxSecret bounds a password file.
const maxSecret = 4 << 10

// readSecret reads a password file: its content without surrounding
// whitespace. Messages never quote the content.
func readSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	switch {
	case err != nil:
		return "", fmt.Errorf("control: password file: %w", err)
	case len(b) > maxSecret:
		return "", fmt.Errorf("control: password file %s is larger than 4 KiB", path)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("control: password file %s is empty", path)
	}
	return s, nil
}

// NATS returns the underlying connection.
func (c *Conn) NATS() *nats.Conn { return c.nc }

// Close closes the connection; subscriptions end.
func (c *Conn) Close() { c.nc.Close() }

// Drain lets subscriptions finish what they hold, then closes.
func (c *Conn) Drain() error { return c.nc.Drain() }

// timeout returns a context bounded by the control section's timeout.
func (c *Conn) timeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.cc.Timeout)
}

// Ensure creates the purge stream and the two buckets, or updates their
// settings (replicas, history) to the control section's. It needs an
// operator; `outpost bus` runs it at start, and the operator's commands
// before they publish. The three are created at once: on a cluster each
// is a raft group whose first leader election takes seconds (JetStream's
// election timeout), and they elect in parallel. One whose update gets no
// answer (its leader is being elected) but that exists is left as it is
// until the next Ensure.
func (c *Conn) Ensure(parent context.Context) error {
	ctx, cancel := c.timeout(parent)
	defer cancel()
	errs := make([]error, 3)
	var wg sync.WaitGroup
	wg.Go(func() {
		_, err := c.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name:        PurgeStream,
			Description: "Outpost purges, in order; each PoP reads them through its durable consumer",
			Subjects:    []string{PurgeSubject},
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.LimitsPolicy,
			MaxAge:      c.cc.PurgeHistory,
			MaxMsgs:     1_000_000,
			MaxMsgSize:  64 << 10,
			Duplicates:  2 * time.Minute,
			Replicas:    c.cc.Replicas,
		})
		if err != nil {
			errs[0] = fmt.Errorf("control: the purge stream %s: %w", PurgeStream, err)
		}
	})
	wg.Go(func() {
		if _, err := c.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:       ConfigBucket,
			Description:  "Outpost's CDN file; the KV revision is the config revision",
			History:      configHistory,
			MaxValueSize: 512 << 10,
			Storage:      jetstream.FileStorage,
			Replicas:     c.cc.Replicas,
		}); err != nil {
			errs[1] = fmt.Errorf("control: the config bucket %s: %w", ConfigBucket, err)
		}
	})
	wg.Go(func() {
		if _, err := c.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:       HostsBucket,
			Description:  "what each Outpost host runs",
			History:      1,
			MaxValueSize: 64 << 10,
			Storage:      jetstream.FileStorage,
			Replicas:     c.cc.Replicas,
		}); err != nil {
			errs[2] = fmt.Errorf("control: the hosts bucket %s: %w", HostsBucket, err)
		}
	})
	wg.Wait()
	if err := errors.Join(errs...); err == nil || !unanswered(err) {
		return err
	}
	// An update of an existing stream is answered by its leader: while it
	// is being elected (4 to 9 s after its server died) the update gets no
	// answer. What exists is good enough to publish to; the next Ensure
	// updates its settings.
	lctx, lcancel := c.timeout(parent)
	defer lcancel()
	exists := map[string]bool{}
	names := c.js.StreamNames(lctx) // the meta leader answers
	for name := range names.Name() {
		exists[name] = true
	}
	if names.Err() != nil {
		return errors.Join(errs...)
	}
	for i, name := range []string{PurgeStream, "KV_" + ConfigBucket, "KV_" + HostsBucket} {
		if errs[i] != nil && unanswered(errs[i]) && exists[name] {
			c.log.Warn("control: cannot update the settings of "+name+" now; it exists, so carrying on", "err", errs[i])
			errs[i] = nil
		}
	}
	return errors.Join(errs...)
}

// NewConn wraps an open NATS connection (an in-process one, say) as a
// Conn with the bounds of cc; Close closes nc.
func NewConn(nc *nats.Conn, cc *config.Control, id Identity, logger *slog.Logger) (*Conn, error) {
	if logger == nil {
		logger = slog.Default()
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	return &Conn{nc: nc, js: js, cc: *cc, id: id, log: logger}, nil
}

// backoff is the reconnect backoff of the control section: it doubles
// from reconnect_wait to reconnect_max_wait, with jitter.
type backoff struct {
	min, max, next time.Duration
}

func (c *Conn) backoff() backoff {
	lo := c.cc.ReconnectWait
	if lo <= 0 {
		lo = config.DefaultControlReconnectWait
	}
	return backoff{min: lo, max: max(lo, c.cc.ReconnectMaxWait), next: lo}
}

// wait returns the next delay and doubles it.
func (b *backoff) wait() time.Duration {
	d := b.next
	b.next = min(2*b.next, b.max)
	return d/2 + rand.N(d/2+1)
}

func (b *backoff) reset() { b.next = b.min }

// StateInterval is how often PoPs publish their states.
func (c *Conn) StateInterval() time.Duration { return c.cc.StateInterval }
