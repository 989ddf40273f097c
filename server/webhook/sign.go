package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SignatureHeader is the HTTP header that carries Sign's value on the
// requests collabd makes to an application (the auth callback, webhooks).
const SignatureHeader = "Collabd-Signature"

// Errors from Verify.
var (
	ErrSignatureMalformed = errors.New("webhook: signature header malformed")
	ErrSignatureStale     = errors.New("webhook: signature timestamp outside the tolerance")
	ErrSignatureMismatch  = errors.New("webhook: signature does not match")
)

// maxSignatureHeader bounds the header Verify parses.
const maxSignatureHeader = 4096

// Sign returns the value of the Collabd-Signature header for body sent at
// t: "t=<unix seconds>,v1=<hex HMAC-SHA256 of "<unix seconds>.<body>">".
// The receiver recomputes the HMAC with the shared secret (Verify) and
// rejects old timestamps, so a captured request cannot be replayed later.
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(signature(secret, ts, body))
}

func signature(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Verify checks a Collabd-Signature header against body: the timestamp
// must be within tolerance of now (either way) and one of the v1 values
// (several are allowed, e.g. while a secret rotates) must be the HMAC of
// "<t>.<body>" with secret. Comparison is constant-time.
func Verify(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	if len(header) > maxSignatureHeader {
		return fmt.Errorf("%w: %d bytes", ErrSignatureMalformed, len(header))
	}
	var ts string
	var sigs [][]byte
	for part := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return fmt.Errorf("%w: %q has no '='", ErrSignatureMalformed, part)
		}
		switch k {
		case "t":
			if ts != "" {
				return fmt.Errorf("%w: two timestamps", ErrSignatureMalformed)
			}
			ts = v
		case "v1":
			sig, err := hex.DecodeString(v)
			if err != nil || len(sig) != sha256.Size {
				return fmt.Errorf("%w: v1 is not a hex SHA-256", ErrSignatureMalformed)
			}
			sigs = append(sigs, sig)
		}
		// Other keys (future schemes) are ignored.
	}
	if ts == "" || len(sigs) == 0 {
		return fmt.Errorf("%w: want t=<unix>,v1=<hex>", ErrSignatureMalformed)
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || unix < 0 {
		return fmt.Errorf("%w: bad timestamp %q", ErrSignatureMalformed, ts)
	}
	if d := now.Sub(time.Unix(unix, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: %s off", ErrSignatureStale, d.Round(time.Second))
	}
	want := signature(secret, ts, body)
	for _, sig := range sigs {
		if hmac.Equal(sig, want) {
			return nil
		}
	}
	return ErrSignatureMismatch
}
