package bus

import "github.com/outpost-cdn/outpost/control"

// Leads returns what this server leads of the JetStream cluster: the meta
// group, the purge stream, the buckets' streams and the given durable
// consumers of the purge stream.
func (s *Server) Leads(consumers ...string) []string {
	var out []string
	if s.ns.JetStreamIsLeader() {
		out = append(out, "meta")
	}
	for _, st := range []string{control.PurgeStream, "KV_" + control.ConfigBucket, "KV_" + control.HostsBucket} {
		if s.ns.JetStreamIsStreamLeader("$G", st) {
			out = append(out, st)
		}
	}
	for _, c := range consumers {
		if s.ns.JetStreamIsConsumerLeader("$G", control.PurgeStream, c) {
			out = append(out, control.PurgeStream+"/"+c)
		}
	}
	return out
}
