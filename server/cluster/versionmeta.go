package cluster

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/collabd/collabd/server/owner"
)

// VersionMeta is a version's metadata in the replicated store's version
// history (storage/jetstream stores it opaque, beside the snapshot): JSON,
// hostile on read (DecodeVersionMeta checks it).
type VersionMeta struct {
	Version uint64   `json:"v"`
	Named   bool     `json:"named,omitempty"`
	Label   string   `json:"label,omitempty"`
	Authors []string `json:"authors,omitempty"`
	// Time, if set (Unix nanoseconds), is when the version was taken, for
	// versions copied from elsewhere (collabd restore --nats); else the
	// stream's time of the message is.
	Time int64 `json:"t,omitempty"`
}

// MaxVersionLabel bounds a label, in bytes (as storage's).
const MaxVersionLabel = 256

// Encode is the metadata as stored.
func (m VersionMeta) Encode() []byte {
	b, _ := json.Marshal(m) // strings and numbers only: cannot fail
	return b
}

// DecodeVersionMeta reads stored metadata (at most jetstream's
// MaxVersionMeta bytes: the store checked).
func DecodeVersionMeta(b []byte) (VersionMeta, error) {
	var m VersionMeta
	if err := json.Unmarshal(b, &m); err != nil {
		return VersionMeta{}, fmt.Errorf("version metadata: %w", err)
	}
	if len(m.Authors) > owner.MaxVersionAuthors || len(m.Label) > MaxVersionLabel || m.Time < 0 {
		return VersionMeta{}, fmt.Errorf("version metadata: %d authors, a label of %d bytes, time %d", len(m.Authors), len(m.Label), m.Time)
	}
	return m, nil
}

// At is when the version was taken: Time if set, else stored.
func (m VersionMeta) At(stored time.Time) time.Time {
	if m.Time > 0 {
		return time.Unix(0, m.Time).UTC()
	}
	return stored
}
