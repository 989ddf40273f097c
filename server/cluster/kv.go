package cluster

import (
	"context"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	jsstore "github.com/collabd/collabd/storage/jetstream"
)

// checkName checks a node id or prefix: letters, digits, '-' and '_'
// (they become KV keys and bucket names).
func checkName(what, s string) error {
	if s == "" || len(s) > 64 {
		return fmt.Errorf("cluster: %s %q: 1..64 bytes", what, s)
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("cluster: %s %q: letters, digits, '-' and '_' only", what, s)
		}
	}
	return nil
}

// docKey is a document's lease key: its id in unpadded base64url (KV keys
// allow only [-/_=.a-zA-Z0-9]).
func docKey(doc string) string { return base64.RawURLEncoding.EncodeToString([]byte(doc)) }

// bucket creates or updates a KV bucket whose keys expire ttl after their
// last write, with markers so that watchers see expiries, retrying while
// the cluster elects its leaders.
func bucket(ctx context.Context, js jetstream.JetStream, name, desc string, ttl time.Duration, replicas int) (jetstream.KeyValue, error) {
	cfg := jetstream.KeyValueConfig{
		Bucket:         name,
		Description:    desc,
		History:        1,
		TTL:            ttl,
		LimitMarkerTTL: max(ttl, time.Second),
		Storage:        jetstream.FileStorage,
		Replicas:       replicas,
	}
	var kv jetstream.KeyValue
	err := jsstore.Retry(ctx, func(ctx context.Context) error {
		var err error
		kv, err = js.CreateOrUpdateKeyValue(ctx, cfg)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: bucket %s: %w", name, err)
	}
	return kv, nil
}
