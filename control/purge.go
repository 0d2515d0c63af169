package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/outpost-cdn/outpost/popapi"
)

// PurgeAck is a PoP's acknowledgement of a purge, published on
// PurgeAckSubject after the purge was applied and acked in the stream.
type PurgeAck struct {
	popapi.PurgeResult
	// Seq is the purge's sequence in PurgeStream.
	Seq uint64 `json:"seq"`
	// Error is why the PoP could not apply it ("" when it did); it will
	// not retry it.
	Error string `json:"error,omitempty"`
	// Latency is filled in by Purge: from the publish to the ack's arrival.
	Latency time.Duration `json:"-"`
}

// PurgeReport is what Purge learnt: the stream sequence of the purge,
// the acknowledgements in arrival order, and the PoPs expected that did
// not answer within the timeout.
type PurgeReport struct {
	Seq     uint64
	Acks    []PurgeAck
	Missing []string
}

// Purge publishes req to PurgeStream and waits up to timeout (the control
// section's purge_timeout when 0) for an acknowledgement from every PoP in
// pops. While the stream does not answer (JetStream electing its leader)
// it publishes again for up to timeout before it gives up. The purge stays in the stream for the PoPs that did not answer:
// they apply it when they are back.
func (c *Conn) Purge(ctx context.Context, req popapi.PurgeRequest, pops []string, timeout time.Duration) (PurgeReport, error) {
	if err := checkToken("purge ID", req.ID); err != nil {
		return PurgeReport{}, err
	}
	if timeout <= 0 {
		timeout = c.cc.PurgeTimeout
	}
	body, err := json.Marshal(req)
	if err != nil {
		return PurgeReport{}, err
	}
	acks := make(chan *nats.Msg, max(len(pops), 16))
	sub, err := c.nc.ChanSubscribe(PurgeAckSubject(req.ID, "*"), acks)
	if err != nil {
		return PurgeReport{}, fmt.Errorf("control: %w", err)
	}
	defer sub.Unsubscribe()
	sub.SetPendingLimits(c.cc.MaxPending, -1)
	start := time.Now()
	ack, err := c.publish(ctx, PurgeSubject, PurgeStream, body, req.ID, timeout)
	if err != nil {
		return PurgeReport{}, fmt.Errorf("control: publishing the purge: %w", err)
	}
	r := PurgeReport{Seq: ack.Sequence}
	waiting := make(map[string]bool, len(pops))
	for _, p := range pops {
		waiting[p] = true
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for len(waiting) > 0 {
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-deadline.C:
			for _, p := range pops {
				if waiting[p] {
					r.Missing = append(r.Missing, p)
				}
			}
			return r, nil
		case m := <-acks:
			var a PurgeAck
			if json.Unmarshal(m.Data, &a) != nil {
				continue
			}
			a.PoP = m.Subject[strings.LastIndexByte(m.Subject, '.')+1:] // the subject names it; the permissions vouch for it
			a.Latency = time.Since(start)
			r.Acks = append(r.Acks, a)
			delete(waiting, a.PoP)
		}
	}
	return r, nil
}

// publish publishes body on subject, which stream holds. While the
// stream does not answer — its leader died and JetStream elects another,
// which takes 4 to 9 s — it publishes again with the reconnect backoff
// for up to within: id is the message ID, so a message that was stored
// but whose answer was lost is stored once (within the stream's
// duplicate window). Each attempt waits at most the control timeout.
func (c *Conn) publish(ctx context.Context, subject, stream string, body []byte, id string, within time.Duration) (*jetstream.PubAck, error) {
	deadline := time.Now().Add(within)
	bo := c.backoff()
	for {
		pctx, cancel := c.timeout(ctx)
		ack, err := c.js.Publish(pctx, subject, body, jetstream.WithMsgID(id), jetstream.WithExpectStream(stream))
		cancel()
		if err == nil || ctx.Err() != nil || !unanswered(err) || errors.Is(c.nc.LastError(), nats.ErrPermissionViolation) {
			return ack, err
		}
		wait := bo.wait()
		if time.Now().Add(wait).After(deadline) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// unanswered reports whether err says JetStream did not answer (a stream
// or meta leader being elected, a server going away), as opposed to
// refusing.
func unanswered(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, nats.ErrConnectionReconnecting) || errors.Is(err, nats.ErrDisconnected)
}

// Purger applies purges to a PoP: Purge of (*pop.PoP).
type Purger interface {
	Purge(popapi.PurgeRequest) (popapi.PurgeResult, error)
}
