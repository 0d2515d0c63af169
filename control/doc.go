// Package control is Outpost's control plane: the fleet's configuration,
// purges, health and load travel on a NATS cluster with JetStream instead
// of an operator's connections to every host.
//
// The protocol (Protocol below names every subject, stream and bucket):
//
//   - Config. `outpost config push` validates the CDN file and puts its
//     bytes in the KV bucket outpost_config under the key "cdn"; the KV
//     revision is the config revision. Every PoP agent (and DNS server)
//     watches the key, so it gets the latest revision on start and on every
//     reconnect (the watch is made again on a reconnect and after two
//     missed heartbeats), parses it as the file it runs, applies it with its Reload,
//     and puts what it runs (revision, settings waiting for a restart, a
//     revision it refused and why) in the KV bucket outpost_hosts under
//     "<role>.<name>": `outpost config status` reads that bucket.
//   - Purge. `outpost purge` publishes a popapi.PurgeRequest on the subject
//     outpost.purge, captured by the stream OUTPOST_PURGE (message ID = the
//     purge ID, so a retried publish is stored once). Each PoP reads the
//     stream through its own durable pull consumer "pop_<name>", one message
//     at a time in stream order (max one unacknowledged), applies it, acks
//     it, then publishes a PurgeAck on outpost.purge.ack.<id>.<pop>, where
//     the command waits. A purge not acknowledged within 2 s comes again
//     (applying one twice is harmless). A PoP that was away resumes from its consumer: it
//     counts as unhealthy until it has applied every purge it missed. Its
//     lag is the consumer's pending count.
//   - State. Every PoP agent publishes a popapi.State on
//     outpost.state.<pop> (core NATS, no persistence) every state interval:
//     rates from successive Stats snapshots, hit ratio, config revision,
//     purge applied and lag, healthy. WatchStates follows them.
//   - Stats. `outpost stats` sends a request on outpost.stats with a reply
//     inbox and gathers the popapi.Stats every PoP agent answers with, until
//     every PoP of the file answered, a timeout, or a cap on replies.
//
// Who may do what is Permissions: an operator publishes config and purges;
// a pop user reads config and its own purge consumer, publishes its own
// state, acks and host report, and answers stats requests; a dns user
// reads config and states and publishes its host report. Package
// control/bus runs an embedded NATS server that enforces them; the manual
// (docs/control.md) gives the same rules for the official nats-server.
package control
