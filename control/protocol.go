package control

import (
	"fmt"
	"regexp"

	"github.com/outpost-cdn/outpost/config"
	"github.com/outpost-cdn/outpost/popapi"
)

// The subjects, streams, buckets and keys of the control plane.
const (
	// ConfigBucket is the KV bucket of CDN files; ConfigKey its one key.
	ConfigBucket = "outpost_config"
	ConfigKey    = "cdn"
	// HostsBucket holds each host's HostReport under "<role>.<name>".
	HostsBucket = "outpost_hosts"
	// PurgeStream captures PurgeSubject; PoP p reads it through the durable
	// consumer PurgeConsumer(p) and acknowledges on PurgeAckSubject(id, p).
	PurgeStream  = "OUTPOST_PURGE"
	PurgeSubject = "outpost.purge"
	// StatsSubject is where `outpost stats` asks every PoP for its Stats.
	StatsSubject = "outpost.stats"
	// StateSubject prefixes the PoPs' states (popapi.StateSubject).
	StateSubject = popapi.StateSubject
)

// configHistory is how many revisions the config bucket keeps.
const configHistory = 10

// PurgeConsumer is the name of PoP pop's durable consumer of PurgeStream.
func PurgeConsumer(pop string) string { return "pop_" + pop }

// PurgeAckSubject is where PoP pop acknowledges the purge id.
func PurgeAckSubject(id, pop string) string { return PurgeSubject + ".ack." + id + "." + pop }

// StatePopSubject is where PoP pop publishes its state.
func StatePopSubject(pop string) string { return StateSubject + "." + pop }

// hostKey is a host's key in HostsBucket.
func hostKey(role, name string) string { return role + "." + name }

// inboxPrefix is the reply inbox prefix of a client of role acting as
// name: each PoP has its own, so one PoP cannot read another's replies.
func inboxPrefix(role, name string) string {
	switch role {
	case config.RolePoP:
		return "_INBOX.pop." + name
	case config.RoleDNS:
		return "_INBOX.dns"
	}
	return "_INBOX"
}

// tokenRE is what a purge ID or a name may be to stand in a subject.
var tokenRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// checkToken checks that s can be one token of a subject.
func checkToken(what, s string) error {
	if !tokenRE.MatchString(s) {
		return fmt.Errorf("control: %s %q: want 1 to 64 letters, digits, '-' or '_'", what, s)
	}
	return nil
}

// Perms are a bus user's allow lists: subjects it may publish to and
// subscribe to, and whether it may answer requests it receives (a reply to
// a message's reply subject, once).
type Perms struct {
	Publish   []string
	Subscribe []string
	Responses bool
}

// Permissions returns what a user of role may do; pop names the PoP a pop
// user acts for. An operator may do everything (it publishes config and
// purges and manages the streams); the others get allow lists with nothing
// else, so a pop or dns credential cannot publish a purge or a config.
func Permissions(role, pop string) (Perms, error) {
	kvRead := func(bucket string) []string {
		return []string{
			"$JS.API.STREAM.INFO.KV_" + bucket,
			"$JS.API.CONSUMER.CREATE.KV_" + bucket + ".>",
			"$JS.API.CONSUMER.DELETE.KV_" + bucket + ".>",
			"$JS.API.CONSUMER.INFO.KV_" + bucket + ".>",
			"$JS.API.DIRECT.GET.KV_" + bucket + ".>",
			"$JS.FC.KV_" + bucket + ".>",
		}
	}
	switch role {
	case config.RoleOperator:
		return Perms{Publish: []string{">"}, Subscribe: []string{">"}, Responses: true}, nil
	case config.RolePoP:
		if err := checkToken("PoP name", pop); err != nil {
			return Perms{}, err
		}
		c := PurgeConsumer(pop)
		pub := []string{
			"$JS.API.INFO",
			StatePopSubject(pop),
			PurgeSubject + ".ack.*." + pop,
			"$JS.API.STREAM.INFO." + PurgeStream,
			"$JS.API.CONSUMER.CREATE." + PurgeStream + "." + c,
			"$JS.API.CONSUMER.CREATE." + PurgeStream + "." + c + ".>",
			"$JS.API.CONSUMER.DURABLE.CREATE." + PurgeStream + "." + c,
			"$JS.API.CONSUMER.INFO." + PurgeStream + "." + c,
			"$JS.API.CONSUMER.MSG.NEXT." + PurgeStream + "." + c,
			"$JS.ACK." + PurgeStream + "." + c + ".>",
			"$JS.API.STREAM.INFO.KV_" + HostsBucket,
			"$KV." + HostsBucket + "." + hostKey(config.RolePoP, pop),
		}
		pub = append(pub, kvRead(ConfigBucket)...)
		sub := []string{inboxPrefix(config.RolePoP, pop) + ".>", StatsSubject}
		return Perms{Publish: pub, Subscribe: sub, Responses: true}, nil
	case config.RoleDNS:
		pub := []string{
			"$JS.API.INFO",
			"$JS.API.STREAM.INFO.KV_" + HostsBucket,
			"$KV." + HostsBucket + "." + config.RoleDNS + ".*",
		}
		pub = append(pub, kvRead(ConfigBucket)...)
		sub := []string{inboxPrefix(config.RoleDNS, "") + ".>", StateSubject + ".>"}
		return Perms{Publish: pub, Subscribe: sub}, nil
	}
	return Perms{}, fmt.Errorf("control: unknown role %q", role)
}
