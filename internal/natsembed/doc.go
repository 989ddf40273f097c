// Package natsembed runs a NATS server with JetStream inside the collabd
// process, so that three collabd binaries can form a whole cluster without
// an external NATS deployment (issue 15, docs/CLUSTER.md).
//
// There is one type, Server, started from a Config by Start and stopped by
// Shutdown. A Server owns the nats-server instance and everything it runs;
// Shutdown returns once it has stopped. The package keeps no global state:
// signal handling of nats-server is off (the collabd binary owns signals)
// and its log goes to the Config's *slog.Logger.
//
// Package natstest (below this one) starts in-process clusters on loopback
// for tests.
package natsembed
