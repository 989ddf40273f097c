package jetstream

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
)

// The object store reads an object's metadata with a direct get, which any
// replica of its stream may answer, one still catching up included (after
// a partition heals, or a restart): a snapshot written and acknowledged on
// a quorum can then look missing. A missing snapshot is corruption (the
// log points at it, and nobody compacts past an owner's fence), so before
// saying so, the stream's leader is asked (the stream API's message get,
// which only the leader answers). Found by collabd chaos cluster: after an
// isolated NATS server rejoined, loads failed with "snapshot object
// missing" and the documents were refused as corrupt for good.

// errSnapNotYet: the snapshot is there on the leader, but the replica that
// answered the read does not have it yet. Not corruption: the load is
// tried again (the owner retries a failed load on the next Join).
var errSnapNotYet = errors.New("snapshot not yet on the replica that answered; retry")

// snapOnLeader asks the snapshot bucket's stream leader whether the object
// name exists (its last metadata message is there and not a deletion). An
// error means the leader could not be asked (no leader, a timeout).
func (s *Store) snapOnLeader(ctx context.Context, name string) (bool, error) {
	bucket := s.opts.Prefix + "_snapshots"
	req, err := json.Marshal(struct {
		LastBySubj string `json:"last_by_subj"`
	}{fmt.Sprintf("$O.%s.M.%s", bucket, base64.URLEncoding.EncodeToString([]byte(name)))})
	if err != nil {
		return false, err
	}
	msg, err := s.js.Conn().RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET.OBJ_"+bucket, req)
	if err != nil {
		return false, fmt.Errorf("asking the snapshot bucket's leader: %w", err)
	}
	var resp struct {
		Error *struct {
			Code    int    `json:"code"`
			ErrCode int    `json:"err_code"`
			Desc    string `json:"description"`
		} `json:"error"`
		Message *struct {
			Data []byte `json:"data"` // base64 in the JSON
		} `json:"message"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return false, fmt.Errorf("the snapshot bucket's leader: %w", err)
	}
	switch {
	case resp.Error != nil && resp.Error.Code == 404:
		return false, nil
	case resp.Error != nil:
		return false, fmt.Errorf("the snapshot bucket's leader: %d %d %s", resp.Error.Code, resp.Error.ErrCode, resp.Error.Desc)
	case resp.Message == nil:
		return false, errors.New("the snapshot bucket's leader: an empty answer")
	}
	var meta struct {
		Deleted bool `json:"deleted"`
	}
	if err := json.Unmarshal(resp.Message.Data, &meta); err != nil {
		return false, fmt.Errorf("the snapshot bucket's leader: metadata: %w", err)
	}
	return !meta.Deleted, nil
}
