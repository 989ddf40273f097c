// Package webhook delivers collabd's events to the app's HTTP endpoints:
// signed JSON POSTs, at least once, from a durable outbox.
//
// An Outbox is a bbolt file of its own (beside the document store, so the
// store's group commit never waits for it). Enqueue writes one record per
// endpoint whose filter takes the event, in one fsynced transaction: once
// Enqueue returns, the event survives a crash. Run delivers records in the
// background: a 2xx answer removes the record; anything else (an error, a
// timeout, a non-2xx status) retries with exponential backoff and full
// jitter, up to MaxAttempts, after which the record moves to the dead
// letters (List, Retry). A crash between a delivery and the record's
// removal redelivers it: receivers deduplicate by the event id, which a
// redelivery keeps.
//
// Every request carries Collabd-Event-Id, Collabd-Event-Type and
// Collabd-Signature: t=UNIX,v1=HEX, where HEX is HMAC-SHA256 of "UNIX.BODY"
// with the endpoint's secret (Sign; a receiver checks it with Verify and
// rejects old timestamps).
//
// An Outbox is safe for concurrent use. Run is one goroutine, owned by
// whoever calls it (the server), which ends when its context does.
package webhook
